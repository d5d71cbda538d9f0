"""A bridge replica killed under load (SIGKILL, then restarted as Kubernetes would): every
heartbeat and every metrics batch that the broker acknowledged reaches NATS, each batch once.

Two replicas share the device topics (one ``$share`` group, a persistent session each). The
messages the killed replica held unacknowledged, and those the broker queued for it while it
was down, stay in its session and come back when it reconnects with the same client id.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from flotta.dev.simulator.provision import CERT_NAME, KEY_NAME, provision
from flotta.dev.stack.nats_client import observer_connection
from flotta.mqtt import MqttClient, MqttError, MqttSettings, TlsFiles
from flotta.pki.store import PkiStore
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import MetricSample, MetricsBatch, StatusReport
from tests.bridge.support import create_device
from tests.e2e.conftest import RunningSystem, start_system, wait_until

pytestmark = pytest.mark.timeout(300)

NAMESPACE = "default"
DEVICES = 16
STATUS_EVERY = 0.1  # seconds, per device
METRICS_EVERY = 0.2


@pytest.fixture
def bridged_system(tmp_path: Path) -> Iterator[RunningSystem]:
    yield from start_system(tmp_path / "stack", devices=0, real_agent=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bridge_metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def knows_every_device(port: int) -> bool:
    return bridge_metric(port, "flotta_bridge_devices") >= DEVICES


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Sent:
    """What the broker acknowledged: heartbeat times and metrics sequences per device."""

    statuses: set[tuple[str, datetime]] = field(default_factory=set)
    batches: set[tuple[str, str, int]] = field(default_factory=set)


async def device_load(
    device_id: str, directory: Path, ca: Path, port: int, sent: Sent, stop: asyncio.Event
) -> None:
    mqtt = MqttClient(
        MqttSettings(
            host="127.0.0.1",
            port=port,
            client_id=device_id,
            tls=TlsFiles(ca, directory / CERT_NAME, directory / KEY_NAME, check_hostname=False),
            clean_start=True,
            session_expiry=0,
        )
    )
    await mqtt.connect()
    stream = f"s{device_id.replace('-', '')}"[:32]
    sequence = 0
    next_metrics = time.monotonic()
    try:
        while not stop.is_set():
            report = StatusReport(
                time=datetime.now(UTC), applied_version="", heartbeat_period_seconds=1
            )
            try:
                await mqtt.publish(device_topic(device_id, DeviceTopic.STATUS), encode(report))
                sent.statuses.add((device_id, report.time))
                if time.monotonic() >= next_metrics:
                    batch = MetricsBatch(
                        stream=stream,
                        sequence=sequence,
                        samples=[MetricSample(name="load", value=sequence, timestamp_ms=1)],
                    )
                    await mqtt.publish(device_topic(device_id, DeviceTopic.METRICS), encode(batch))
                    sent.batches.add((device_id, stream, sequence))
                    sequence += 1
                    next_metrics += METRICS_EVERY
            except MqttError:
                pass  # not acknowledged: not counted as sent
            await asyncio.sleep(STATUS_EVERY)
    finally:
        await mqtt.close()


async def collect_statuses(
    state_dir: Path, seen: set[tuple[str, datetime]], stop: asyncio.Event
) -> None:
    """Every heartbeat the bridges publish (core subscription: copies included)."""
    connection = await observer_connection(state_dir)
    try:

        async def on_message(message: Any) -> None:
            event = json.loads(message.data)
            device_id = message.subject.split(".")[3]
            stamp = datetime.fromisoformat(event["data"]["time"].replace("Z", "+00:00"))
            seen.add((device_id, stamp))

        await connection.subscribe(f"flotta.device.{NAMESPACE}.*.status", cb=on_message)
        await stop.wait()
        await asyncio.sleep(0)
    finally:
        await connection.close()


async def stored_batches(state_dir: Path) -> list[tuple[str, str, int]]:
    connection = await observer_connection(state_dir)
    try:
        consumer = await connection.jetstream().pull_subscribe(
            f"flotta.device.{NAMESPACE}.*.metrics", stream="FLOTTA_TELEMETRY"
        )
        found: list[tuple[str, str, int]] = []
        while True:
            try:
                messages = await consumer.fetch(500, timeout=2)
            except TimeoutError:
                return found
            for message in messages:
                data = json.loads(message.data)["data"]
                found.append((message.subject.split(".")[3], data["stream"], data["sequence"]))
                await message.ack()
    finally:
        await connection.close()


def test_a_bridge_replica_killed_under_load_loses_no_heartbeat_and_no_batch(
    bridged_system: RunningSystem, tmp_path: Path
) -> None:
    system = bridged_system
    stack = system.stack
    ports = system.layout.ports()
    second_health = free_port()
    stack.start_bridge(ports, replica=1, health_port=second_health)
    for port in (ports.bridge_health, second_health):
        wait_until(partial(ready, port), timeout=60, what=f"bridge on {port} ready")

    ids = [f"failover-{i:02d}" for i in range(DEVICES)]
    for device_id in ids:
        create_device(system.api, NAMESPACE, device_id)
    identities = tmp_path / "devices"
    provision(PkiStore(system.layout.pki), identities, ids, namespace=NAMESPACE)
    for port in (ports.bridge_health, second_health):  # both replicas know every device
        wait_until(
            partial(knows_every_device, port),
            timeout=60,
            what="the bridges to see the EdgeDevices",
        )

    victim = next(r for r in stack.records if r.name == "bridge-1" and r.is_running())
    sent = Sent()
    seen: set[tuple[str, datetime]] = set()
    handled_before_kill = 0.0

    async def scenario() -> None:
        nonlocal handled_before_kill
        stop_load, stop_collecting = asyncio.Event(), asyncio.Event()
        collector = asyncio.create_task(collect_statuses(system.layout.root, seen, stop_collecting))
        await asyncio.sleep(0.5)
        load = [
            asyncio.create_task(
                device_load(
                    i, identities / i, system.layout.pki / "ca.crt", ports.mqtt, sent, stop_load
                )
            )
            for i in ids
        ]
        await asyncio.sleep(5)
        handled_before_kill = await asyncio.to_thread(
            bridge_metric, second_health, "flotta_bridge_messages_total"
        )
        os.kill(victim.pid, signal.SIGKILL)  # mid-stream: it holds unacknowledged messages
        await asyncio.sleep(5)  # its share queues in its session meanwhile
        stack.records.remove(victim)
        await asyncio.to_thread(stack.start_bridge, ports, replica=1, health_port=second_health)
        await asyncio.sleep(3)
        stop_load.set()
        await asyncio.gather(*load)

        await asyncio.to_thread(
            wait_until,
            lambda: sent.statuses <= seen,
            timeout=90,
            what="every heartbeat on NATS",
        )
        stop_collecting.set()
        await collector

    try:
        asyncio.run(scenario())
    except AssertionError:
        missing = sent.statuses - seen
        raise AssertionError(
            f"{len(missing)} of {len(sent.statuses)} heartbeats never reached NATS"
        ) from None

    assert handled_before_kill > 0, "the killed replica never had a share of the load"
    assert len(sent.statuses) > DEVICES * 50

    def all_batches_stored() -> list[tuple[str, str, int]] | None:
        stored = asyncio.run(stored_batches(system.layout.root))
        return stored if set(stored) >= sent.batches else None

    stored = wait_until(all_batches_stored, timeout=60, what="every metrics batch in JetStream")
    assert len(stored) == len(set(stored)), "a batch landed twice in the stream"
    assert set(stored) == sent.batches

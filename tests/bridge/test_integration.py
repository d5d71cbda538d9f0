"""The bridge against real Mosquitto (mTLS + ACL), real nats-server and the local
Kubernetes API: heartbeats to status, NATS envelopes, events, liveness."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import nats
from kubernetes import client as k8s
from nats.js.errors import NotFoundError

from flotta.schemas.codec import decode, encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.hardware import Cpu, Hardware
from flotta.schemas.wire.status import HardwareReport, StatusReport, WorkloadReport
from flotta.schemas.wire.telemetry import MetricSample, MetricsBatch, TelemetryReceipt
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.support import create_device, get_device
from tests.fixtures.brokers import ProbeFactory


async def eventually(predicate: Callable[[], Any], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(predicate)
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {within} s; last value: {last!r}")


def heartbeat(*workloads: tuple[str, str], applied: str = "v1", **extra: Any) -> bytes:
    return encode(
        StatusReport(
            time=datetime.now(UTC),
            applied_version=applied,
            heartbeat_period_seconds=extra.pop("period", 10),
            workloads=[WorkloadReport(name=n, phase=p) for n, p in workloads],  # type: ignore[arg-type]
            **extra,
        )
    )


def status_of(env: BridgeEnv, name: str) -> dict[str, Any]:
    status = get_device(env.kube.api, NAMESPACE, name).get("status") or {}
    assert isinstance(status, dict)
    return status


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


async def stream_messages(env: BridgeEnv, stream: str) -> int:
    nc = await nats.connect(env.nats.url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


async def last_message(env: BridgeEnv, stream: str, subject: str) -> dict[str, Any] | None:
    nc = await nats.connect(env.nats.url)
    try:
        message = await nc.jetstream().get_last_msg(stream, subject)
    except NotFoundError:
        return None
    finally:
        await nc.close()
    document = json.loads(message.data or b"{}")
    assert isinstance(document, dict)
    return document


async def test_heartbeats_become_status_written_sparingly(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-1")
    bridge = await start_bridge()
    device = await asyncio.to_thread(bridge_env.device, "dev-1")
    try:
        topic = device_topic("dev-1", DeviceTopic.STATUS)
        hardware = HardwareReport(scope="full", hardware=Hardware(hostname="h1", cpu=Cpu(count=4)))
        await asyncio.to_thread(
            device.publish, topic, heartbeat(("web", "Running"), hardware=hardware)
        )
        status = await eventually(
            lambda: (s := status_of(bridge_env, "dev-1")).get("phase") == "Online" and s
        )
        assert conditions(status) == {
            "Online": "True",
            "ConfigApplied": "True",
            "WorkloadsReady": "True",
            "Ready": "True",
        }
        assert status["desiredVersion"] == "v1"  # the operator's field is untouched
        assert status["hardware"]["cpu"]["count"] == 4
        assert status["workloads"][0]["name"] == "web"
        assert status["workloads"][0]["lastTransitionTime"]
        assert all(c["observedGeneration"] == 1 for c in status["conditions"])

        event = await last_message(bridge_env, "FLOTTA_STATUS", "flotta.device.fleet.dev-1.status")
        assert event is not None
        assert event["type"] == "io.flotta.device.status.v1"
        assert event["data"]["workloads"][0]["phase"] == "Running"

        # the same heartbeat again and again: no write
        writes_before = bridge.status_writer.written if bridge.status_writer else -1
        for _ in range(5):
            await asyncio.to_thread(device.publish, topic, heartbeat(("web", "Running")))
        await eventually(lambda: bridge.ingest is not None and bridge.ingest.acked >= 6)
        await asyncio.sleep(0.3)
        assert bridge.status_writer is not None
        assert bridge.status_writer.written == writes_before

        # a real change is written at once (its latency is measured by benchmarks/bridge_bench.py)
        await asyncio.to_thread(device.publish, topic, heartbeat(("web", "Failed")))
        status = await eventually(
            lambda: (
                (s := status_of(bridge_env, "dev-1"))["workloads"][0]["phase"] == "Failed" and s
            ),
            within=10.0,
        )
        assert conditions(status)["WorkloadsReady"] == "False"
        assert conditions(status)["Ready"] == "False"
        assert bridge.status_writer.written == writes_before + 1
    finally:
        await asyncio.to_thread(device.close)


async def test_batches_and_events_land_once(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-2")
    bridge = await start_bridge()
    device = await asyncio.to_thread(bridge_env.device, "dev-2")
    try:
        batch = encode(
            MetricsBatch(
                stream="boot-1",
                sequence=1,
                samples=[MetricSample(name="cpu", value=0.5, timestamp_ms=1)],
            )
        )
        event = encode(
            DeviceEvent(
                id="ev-1",
                time=datetime.now(UTC),
                type="Warning",
                reason="WorkloadFailed",
                message="exit 1",
                workload="web",
            )
        )
        for _ in range(2):  # the same batch and the same event twice, as after a lost PUBACK
            await asyncio.to_thread(
                device.publish, device_topic("dev-2", DeviceTopic.METRICS), batch
            )
            await asyncio.to_thread(
                device.publish, device_topic("dev-2", DeviceTopic.EVENTS), event
            )
        await eventually(lambda: bridge.ingest is not None and bridge.ingest.acked >= 4)
        assert await stream_messages(bridge_env, "FLOTTA_TELEMETRY") == 1
        assert await stream_messages(bridge_env, "FLOTTA_EVENTS") == 1
        stored = await last_message(
            bridge_env, "FLOTTA_TELEMETRY", "flotta.device.fleet.dev-2.metrics"
        )
        assert stored is not None
        assert stored["id"] == "dev-2:metrics:boot-1:1"

        core = bridge_env.kube.api

        def events() -> list[Any]:
            items = k8s.CoreV1Api(core).list_namespaced_event(NAMESPACE).items
            return [e for e in items if e.involved_object.name == "dev-2"]

        recorded = await eventually(events)
        await asyncio.sleep(0.3)
        recorded = await asyncio.to_thread(events)
        assert len(recorded) == 1
        assert recorded[0].reason == "WorkloadFailed"
        assert recorded[0].type == "Warning"
        assert recorded[0].involved_object.kind == "EdgeDevice"
        assert recorded[0].message == "workload web: exit 1"
    finally:
        await asyncio.to_thread(device.close)


async def test_every_stored_batch_is_confirmed_to_its_device_and_nothing_else_is(
    bridge_env: BridgeEnv, start_bridge: StartBridge, mqtt_probes: ProbeFactory
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-3")
    await start_bridge()
    creds = bridge_env.broker.device("dev-3", namespace=NAMESPACE)
    # One connection per device certificate: the broker names it after the CN.
    device = await asyncio.to_thread(mqtt_probes.connect, creds, "dev-3")
    await asyncio.to_thread(device.subscribe, device_topic("dev-3", DeviceTopic.RECEIPTS))
    try:
        metrics = device_topic("dev-3", DeviceTopic.METRICS)
        for sequence in (0, 1, 1):  # batch 1 twice, as after a lost PUBACK: confirmed twice
            batch = MetricsBatch(
                stream="boot-3",
                sequence=sequence,
                samples=[MetricSample(name="cpu", value=0.5, timestamp_ms=1)],
            )
            await asyncio.to_thread(device.publish, metrics, encode(batch))
        await asyncio.to_thread(
            device.publish, device_topic("dev-3", DeviceTopic.STATUS), heartbeat()
        )
        await asyncio.to_thread(device.publish, metrics, b'{"schemaVersion": 1, "bad": true}')
        received = await asyncio.to_thread(device.drain, quiet=1.5)
        receipts = [decode(TelemetryReceipt, m.payload) for m in received]
        assert [(r.kind, r.stream, r.sequences) for r in receipts] == [
            ("metrics", "boot-3", [0]),
            ("metrics", "boot-3", [1]),
            ("metrics", "boot-3", [1]),
        ]
        assert await stream_messages(bridge_env, "FLOTTA_TELEMETRY") == 2
    finally:
        await asyncio.to_thread(device.close)

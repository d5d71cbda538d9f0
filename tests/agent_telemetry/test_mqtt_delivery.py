"""Telemetry through a real Mosquitto (mTLS, ACL): the broker is stopped while metrics and
logs keep coming, started again, and every buffered record arrives exactly once after
de-duplication by (kind, stream, sequence), as the bridge de-duplicates. The observer plays
the bridge's part in the receipt protocol (bridge identity, a receipt per stored batch), and
the device's buffer empties only through those receipts."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE, Popen

from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.system import SystemCollector
from flotta.backoff import Backoff, BackoffPolicy
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles
from flotta.schemas.codec import decode, encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import (
    DesiredConfiguration,
    DesiredWorkload,
    LogsBatch,
    MetricsBatch,
    TelemetryReceipt,
)
from flotta.schemas.wire.desired import MetricsSettings, SystemMetricsSettings
from tests.agent_telemetry.log_sources import tail_source, write_lines
from tests.agent_telemetry.sample_root import sample_root
from tests.agent_telemetry.waiting import wait_until
from tests.fixtures.brokers import ClientCredentials, TestBroker

DEVICE = "dev-1"
METRICS = device_topic(DEVICE, DeviceTopic.METRICS)
LOGS = device_topic(DEVICE, DeviceTopic.LOGS)
RECEIPTS = device_topic(DEVICE, DeviceTopic.RECEIPTS)
REPO = Path(__file__).resolve().parents[2]


def settings_for(broker: TestBroker, credentials: ClientCredentials) -> MqttSettings:
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id=credentials.identity,
        tls=TlsFiles(credentials.ca, credentials.cert, credentials.key, check_hostname=False),
        reconnect_base=0.1,
        reconnect_cap=0.5,
        connect_timeout=5.0,
    )


@dataclass
class Observer:
    """Reads the device's metrics and logs with the bridge's identity and a persistent
    session (the broker keeps its queue across the restart); de-duplicates and confirms each
    batch with a receipt, like the bridge."""

    client: MqttClient
    batches: dict[tuple[str, str, int], bytes] = field(default_factory=dict)
    duplicates: int = 0
    receipts: int = 0
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        await self.client.subscribe([(METRICS, 1), (LOGS, 1)])
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for message in self.client.messages():
            kind = message.topic.rsplit("/", 1)[1]
            batch: MetricsBatch | LogsBatch = (
                decode(MetricsBatch, message.payload)
                if kind == "metrics"
                else decode(LogsBatch, message.payload)
            )
            key = (kind, batch.stream, batch.sequence)
            if key in self.batches:
                assert self.batches[key] == message.payload, "resent batch differs"
                self.duplicates += 1
            self.batches[key] = message.payload
            receipt = TelemetryReceipt(
                kind="metrics" if kind == "metrics" else "logs",
                stream=batch.stream,
                sequences=[batch.sequence],
            )
            await self.client.publish(RECEIPTS, encode(receipt))
            self.receipts += 1

    def lines(self) -> list[str]:
        return [
            line.line
            for (kind, _, _), payload in sorted(self.batches.items())
            if kind == "logs"
            for line in decode(LogsBatch, payload).lines
        ]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


async def feed_receipts(device: MqttClient, telemetry: TelemetryService) -> None:
    await device.subscribe([(RECEIPTS, 1)])
    async for message in device.messages():
        telemetry.receipt(message.payload)


def confirming_observer(broker: TestBroker) -> Observer:
    return Observer(MqttClient(settings_for(broker, broker.bridge())))


async def test_broker_outage_every_record_arrives_once(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    observer = confirming_observer(mosquitto_broker)
    device = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device(DEVICE)))
    failures_before = device.counters.publish_failures
    processes: list[asyncio.subprocess.Process] = []
    telemetry = TelemetryService(
        tmp_path / "state",
        DEVICE,
        max_bytes=50_000_000,
        log_source=tail_source(tmp_path, processes),
        system=SystemCollector(sample_root(tmp_path / "root"), clock_ticks=100),
        flush_interval=0.2,
        retry=Backoff(BackoffPolicy(base=0.1, cap=0.5, jitter=0.5)),
    )
    (tmp_path / "app.log").touch()
    workload = DesiredWorkload(name="app", namespace="default", pod_spec={}, log_collection="x")
    config = DesiredConfiguration(metrics=MetricsSettings(system=SystemMetricsSettings(interval=1)))
    receipts: asyncio.Task[None] | None = None
    try:
        await observer.start()
        await device.connect()
        telemetry.configure(config, [workload], {})
        runner = asyncio.create_task(telemetry.run(device.publish))
        receipts = asyncio.create_task(feed_receipts(device, telemetry))
        await write_lines(tmp_path / "app.log", 100, prefix="before")
        await wait_until(lambda: len(observer.lines()) >= 100)

        await asyncio.to_thread(mosquitto_broker.stop)
        await write_lines(tmp_path / "app.log", 200, prefix="during")
        await asyncio.sleep(2.5)  # two more rounds of system metrics
        assert telemetry.stats().buffered_records >= 200 + 2

        await asyncio.to_thread(mosquitto_broker.start)  # same port, persistent store
        await write_lines(tmp_path / "app.log", 100, prefix="after")
        await wait_until(lambda: len(set(observer.lines())) >= 400, limit=60)

        telemetry.configure(
            DesiredConfiguration(
                metrics=MetricsSettings(system=SystemMetricsSettings(disabled=True))
            ),
            [],
            {},
        )
        # empty only once every batch was confirmed by a receipt
        await wait_until(lambda: telemetry.stats().buffered_records == 0, limit=30)
        assert telemetry.stats().unconfirmed_batches == 0
        await telemetry.close()
        await runner
    finally:
        if receipts is not None:
            receipts.cancel()
            await asyncio.gather(receipts, return_exceptions=True)
        await telemetry.close()
        await device.close()
        await observer.close()

    expected = (
        [f"before-{i}" for i in range(100)]
        + [f"during-{i}" for i in range(200)]
        + [f"after-{i}" for i in range(100)]
    )
    assert device.counters.publish_failures > failures_before
    assert observer.lines() == expected  # each line once, in order
    logs = [
        decode(LogsBatch, p) for (k, _, _), p in sorted(observer.batches.items()) if k == "logs"
    ]
    metrics = [
        decode(MetricsBatch, p)
        for (k, _, _), p in sorted(observer.batches.items())
        if k == "metrics"
    ]
    for batches in (logs, metrics):
        assert [b.sequence for b in batches] == list(range(len(batches)))  # no gap
        assert all(b.dropped == 0 for b in batches)
    samples = [
        (s.name, tuple(sorted(s.labels.items())), s.timestamp_ms)
        for b in metrics
        for s in b.samples
    ]
    assert len(samples) == len(set(samples))
    rounds = {timestamp for name, _, timestamp in samples if name == "node_load1"}
    assert len(rounds) >= 4  # before, during and after the outage


def start_agent(broker: TestBroker, credentials: ClientCredentials, tmp_path: Path) -> Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        str(REPO / folder) for folder in ("schemas", "agent", "mosquitto", "deploy", ".")
    )
    agent = Popen(
        [
            sys.executable,
            "-m",
            "tests.agent_telemetry.telemetry_agent",
            str(tmp_path / "state"),
            str(tmp_path),
            broker.host,
            str(broker.port),
            str(credentials.ca),
            str(credentials.cert),
            str(credentials.key),
            DEVICE,
        ],
        env=env,
        cwd=REPO,
        stdout=PIPE,
        text=True,
    )
    assert agent.stdout is not None
    assert agent.stdout.readline().strip() == "running"
    return agent


def kill(agent: Popen[str]) -> None:
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    if agent.stdout is not None:
        agent.stdout.close()


async def test_agent_killed_while_sending_and_restarted_loses_and_repeats_nothing(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    observer = confirming_observer(mosquitto_broker)
    credentials = mosquitto_broker.device(DEVICE)
    (tmp_path / "app.log").touch()
    agents: list[Popen[str]] = []
    try:
        await observer.start()
        agents.append(await asyncio.to_thread(start_agent, mosquitto_broker, credentials, tmp_path))
        producer = asyncio.create_task(write_lines(tmp_path / "app.log", 400, prefix="a"))
        await wait_until(lambda: len(observer.lines()) >= 50)
        await asyncio.to_thread(kill, agents[0])  # SIGKILL while lines flow and batches fly
        await producer
        await write_lines(tmp_path / "app.log", 200, prefix="b")  # while no agent runs
        agents.append(await asyncio.to_thread(start_agent, mosquitto_broker, credentials, tmp_path))
        await wait_until(lambda: len(set(observer.lines())) >= 600, limit=60)
        await asyncio.sleep(1.5)  # anything sent twice with new sequence numbers would show
    finally:
        for agent in agents:
            if agent.poll() is None:
                await asyncio.to_thread(kill, agent)
        await observer.close()

    expected = [f"a-{i}" for i in range(400)] + [f"b-{i}" for i in range(200)]
    assert observer.lines() == expected
    metrics = [
        decode(MetricsBatch, p)
        for (k, _, _), p in sorted(observer.batches.items())
        if k == "metrics"
    ]
    assert [b.sequence for b in metrics] == list(range(len(metrics)))
    samples = [
        (s.name, tuple(sorted(s.labels.items())), s.timestamp_ms)
        for b in metrics
        for s in b.samples
    ]
    assert len(samples) == len(set(samples))

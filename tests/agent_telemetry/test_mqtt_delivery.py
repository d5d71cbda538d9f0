"""Telemetry through a real Mosquitto (mTLS, ACL): the broker is stopped while metrics and
logs keep coming, started again, and every buffered record arrives exactly once after
de-duplication by (kind, stream, sequence), as the bridge de-duplicates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.backoff import Backoff
from flotta.agent.telemetry.system import SystemCollector
from flotta.schemas.codec import decode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.desired import (
    DesiredConfiguration,
    DesiredWorkload,
    MetricsSettings,
    SystemMetricsSettings,
)
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch
from tests.agent_telemetry.log_sources import tail_source, write_lines
from tests.agent_telemetry.sample_root import sample_root
from tests.agent_telemetry.waiting import wait_until
from tests.fixtures.brokers import ClientCredentials, TestBroker
from tests.fixtures.mqtt_probe import ACCEPTED, MqttProbe, ProbeRefusedError

DEVICE = "dev-1"
METRICS = device_topic(DEVICE, DeviceTopic.METRICS)
LOGS = device_topic(DEVICE, DeviceTopic.LOGS)


class ProbePublisher:
    """``publish`` for the service over one MQTT connection with the device's certificate:
    returns once the PUBACK came, raises otherwise (and connects afresh next time)."""

    def __init__(self, broker: TestBroker, credentials: ClientCredentials) -> None:
        self.broker = broker
        self.credentials = credentials
        self.held_back = False
        self.failures = 0
        self._probe: MqttProbe | None = None

    async def publish(self, topic: str, payload: bytes) -> None:
        if self.held_back:
            raise ConnectionError("held back by the test")
        try:
            await asyncio.to_thread(self._publish, topic, payload)
        except Exception:
            self.failures += 1
            raise

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._probe is None:
            probe = MqttProbe(self.broker.host, self.broker.port, self.credentials, DEVICE)
            try:
                probe.connect(timeout=2)
            except ProbeRefusedError:
                probe.close()
                raise
            self._probe = probe
        try:
            code = self._probe.publish(topic, payload, timeout=2)
        except TimeoutError:
            self.close()
            raise
        if code not in ACCEPTED:
            raise RuntimeError(f"PUBACK reason code {code}")

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None


@dataclass
class Observer:
    """Reads the device's metrics and logs as an observer identity; de-duplicates."""

    broker: TestBroker
    credentials: ClientCredentials
    probes: list[MqttProbe] = field(default_factory=list)
    batches: dict[tuple[str, str, int], bytes] = field(default_factory=dict)
    duplicates: int = 0

    def connect(self) -> None:
        probe = MqttProbe(
            self.broker.host, self.broker.port, self.credentials, f"observer-{len(self.probes)}"
        )
        probe.connect()
        assert probe.subscribe(METRICS) == [1]
        assert probe.subscribe(LOGS) == [1]
        self.probes.append(probe)

    def collect(self) -> None:
        for probe in self.probes:
            while (message := probe.next_message(timeout=0)) is not None:
                kind = message.topic.rsplit("/", 1)[1]
                model = MetricsBatch if kind == "metrics" else LogsBatch
                batch = decode(model, message.payload)
                key = (kind, batch.stream, batch.sequence)
                if key in self.batches:
                    assert self.batches[key] == message.payload, "resent batch differs"
                    self.duplicates += 1
                self.batches[key] = message.payload

    def lines(self) -> list[str]:
        self.collect()
        return [
            line.line
            for (kind, _, _), payload in sorted(self.batches.items())
            if kind == "logs"
            for line in decode(LogsBatch, payload).lines
        ]

    def close(self) -> None:
        for probe in self.probes:
            probe.close()


async def test_broker_outage_every_record_arrives_once(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    observer = Observer(mosquitto_broker, mosquitto_broker.observer("telemetry-test"))
    publisher = ProbePublisher(mosquitto_broker, mosquitto_broker.device(DEVICE))
    processes: list[asyncio.subprocess.Process] = []
    telemetry = TelemetryService(
        tmp_path / "state",
        DEVICE,
        max_bytes=50_000_000,
        log_source=tail_source(tmp_path, processes),
        system=SystemCollector(sample_root(tmp_path / "root"), clock_ticks=100),
        flush_interval=0.2,
        retry=Backoff(initial=0.1, maximum=0.5),
    )
    (tmp_path / "app.log").touch()
    workload = DesiredWorkload(name="app", namespace="default", pod_spec={}, log_collection="x")
    config = DesiredConfiguration(metrics=MetricsSettings(system=SystemMetricsSettings(interval=1)))
    try:
        await asyncio.to_thread(observer.connect)
        telemetry.configure(config, [workload], {})
        runner = asyncio.create_task(telemetry.run(publisher.publish))
        await write_lines(tmp_path / "app.log", 100, prefix="before")
        await wait_until(lambda: len(observer.lines()) >= 100)

        await asyncio.to_thread(mosquitto_broker.stop)
        await write_lines(tmp_path / "app.log", 200, prefix="during")
        await asyncio.sleep(2.5)  # two more rounds of system metrics
        assert telemetry.stats().buffered_records >= 200 + 2

        publisher.held_back = True  # the observer subscribes again before the device sends
        await asyncio.to_thread(mosquitto_broker.start)
        await asyncio.to_thread(observer.connect)
        publisher.held_back = False
        await write_lines(tmp_path / "app.log", 100, prefix="after")
        await wait_until(lambda: len(set(observer.lines())) >= 400, limit=60)

        telemetry.configure(
            DesiredConfiguration(
                metrics=MetricsSettings(system=SystemMetricsSettings(disabled=True))
            ),
            [],
            {},
        )
        await wait_until(lambda: telemetry.stats().buffered_records == 0, limit=30)
        await asyncio.sleep(0.5)  # the last PUBACKed batches reach the observer
        await telemetry.close()
        await runner
    finally:
        await telemetry.close()
        await asyncio.to_thread(publisher.close)
        await asyncio.to_thread(observer.close)

    expected = (
        [f"before-{i}" for i in range(100)]
        + [f"during-{i}" for i in range(200)]
        + [f"after-{i}" for i in range(100)]
    )
    assert publisher.failures > 0
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

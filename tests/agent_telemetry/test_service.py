"""TelemetryService end to end with real collectors (a prepared /proc tree, a loopback HTTP
workload endpoint, a tail -F log source) and an in-process receiver behind ``publish``.
The same flow against a real Mosquitto is in test_mqtt_delivery.py."""

import asyncio
from pathlib import Path

from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.buffer import Flow
from flotta.agent.telemetry.system import SystemCollector
from flotta.backoff import Backoff, BackoffPolicy
from flotta.schemas.wire import DesiredConfiguration, DesiredWorkload
from flotta.schemas.wire.desired import (
    MetricsSettings,
    SystemMetricsSettings,
    WorkloadMetricsSettings,
)
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch
from tests.agent_telemetry.http_server import metrics_endpoint
from tests.agent_telemetry.log_sources import tail_source, write_lines
from tests.agent_telemetry.receiver import Receiver
from tests.agent_telemetry.sample_root import sample_root
from tests.agent_telemetry.waiting import wait_until


def configuration(allow: list[str] | None = None) -> DesiredConfiguration:
    return DesiredConfiguration(
        metrics=MetricsSettings(system=SystemMetricsSettings(interval=1, allow_list=allow))
    )


NOTHING = DesiredConfiguration(metrics=MetricsSettings(system=SystemMetricsSettings(disabled=True)))


def lines_received(receiver: Receiver) -> int:
    return sum(len(batch.lines) for batch in receiver.logs())


def app(port: int) -> DesiredWorkload:
    return DesiredWorkload(
        name="app",
        namespace="default",
        pod_spec={},
        metrics=WorkloadMetricsSettings(port=port, path="/metrics", interval=1),
        log_collection="default",
    )


def service(tmp_path: Path, processes: list, **kwargs: object) -> TelemetryService:  # type: ignore[type-arg]
    return TelemetryService(
        tmp_path / "state",
        "dev-1",
        log_source=tail_source(tmp_path, processes),
        system=SystemCollector(sample_root(tmp_path / "root"), clock_ticks=100),
        flush_interval=0.2,
        retry=Backoff(BackoffPolicy(base=0.05, cap=0.2, jitter=0.5)),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_offline_then_online_every_record_arrives_once(tmp_path: Path) -> None:
    processes: list[asyncio.subprocess.Process] = []
    receiver = Receiver(lose_every_nth_ack=3)
    telemetry = service(tmp_path, processes, max_bytes=50_000_000)
    receiver.confirm = telemetry.receipt
    (tmp_path / "app.log").touch()
    async with metrics_endpoint(b"app_up 1\n") as endpoint:
        telemetry.configure(
            configuration(["node_load1", "node_memory_*"]),
            [app(endpoint.port)],
            {"app": "127.0.0.1"},
        )
        runner = asyncio.create_task(telemetry.run(receiver.publish))
        await write_lines(tmp_path / "app.log", 300)
        await wait_until(lambda: len(endpoint.requests) >= 2)
        await wait_until(lambda: telemetry.stats().buffered_records >= 300 + 2 * 3 + 2)
        assert receiver.batches == {}
        receiver.online = True
        await write_lines(tmp_path / "app.log", 100, prefix="online")
        await wait_until(lambda: len(endpoint.requests) >= 4)
        await wait_until(lambda: len(receiver.logs()) > 0 and lines_received(receiver) >= 400)
        telemetry.configure(NOTHING, [], {})  # collection stops; what is buffered drains
        await wait_until(lambda: telemetry.stats().buffered_records == 0)
        await telemetry.close()
        await runner
    # every third PUBACK was lost: the batch is resent unless its receipt came first
    lost_acks = (receiver.attempts - telemetry.counters.failures) // 3
    assert lost_acks > 0
    assert telemetry.counters.failures > lost_acks  # offline attempts and lost acks

    logs = receiver.logs()
    assert [b.sequence for b in logs] == list(range(len(logs)))  # no gap: nothing lost
    lines = [line.line for batch in logs for line in batch.lines]
    assert lines == [f"line-{i}" for i in range(300)] + [f"online-{i}" for i in range(100)]

    metrics = receiver.metrics()
    assert [b.sequence for b in metrics] == list(range(len(metrics)))
    samples = [s for batch in metrics for s in batch.samples]
    keys = [(s.name, tuple(sorted(s.labels.items())), s.timestamp_ms) for s in samples]
    assert len(keys) == len(set(keys))  # exactly once
    names = {s.name for s in samples}
    assert names == {
        "node_load1",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "app_up",
    }
    app_up = [s for s in samples if s.name == "app_up"]
    assert len(app_up) >= 3  # a scrape cut short by the reconfiguration stores nothing
    assert app_up[0].labels == {"workload": "app"}  # the batch's topic names the device
    every: list[MetricsBatch | LogsBatch] = [*logs, *metrics]
    assert all(b.dropped == 0 for b in every)
    assert {b.stream for b in every} == {telemetry.buffer.stream}
    assert all(p.returncode is not None for p in processes)


async def test_at_the_bound_the_oldest_go_and_the_drop_is_reported(tmp_path: Path) -> None:
    processes: list[asyncio.subprocess.Process] = []
    receiver = Receiver()
    telemetry = service(tmp_path, processes, max_bytes=40_000)
    receiver.confirm = telemetry.receipt
    (tmp_path / "app.log").touch()
    telemetry.configure(NOTHING, [app(0)], {})
    runner = asyncio.create_task(telemetry.run(receiver.publish))
    await write_lines(tmp_path / "app.log", 1000)
    await wait_until(
        lambda: telemetry.stats().dropped_records + telemetry.stats().buffered_records >= 1000
    )
    await asyncio.sleep(0.5)  # the last staged lines reach the buffer
    receiver.online = True
    await wait_until(lambda: telemetry.stats().buffered_records == 0)
    await telemetry.close()
    await runner
    dropped = telemetry.stats().dropped_records
    assert dropped > 500
    logs = receiver.logs()
    lines = [line.line for batch in logs for line in batch.lines]
    assert lines == [f"line-{i}" for i in range(dropped, 1000)]  # the newest survived, in order
    assert sum(b.dropped for b in logs) == dropped
    assert logs[0].dropped == dropped


async def test_a_batch_the_broker_took_and_lost_is_sent_again_until_confirmed(
    tmp_path: Path,
) -> None:
    receiver = Receiver(online=True, vanish_first=3)
    telemetry = service(tmp_path, [], max_bytes=1_000_000, flow=Flow(resend_after=0.5, window=2))
    receiver.confirm = telemetry.receipt
    (tmp_path / "app.log").touch()
    telemetry.configure(NOTHING, [app(0)], {})
    runner = asyncio.create_task(telemetry.run(receiver.publish))
    await write_lines(tmp_path / "app.log", 50)
    await wait_until(lambda: lines_received(receiver) >= 50, limit=20)
    await wait_until(lambda: telemetry.stats().buffered_records == 0)
    await telemetry.close()
    await runner
    lines = [line.line for batch in receiver.logs() for line in batch.lines]
    assert lines == [f"line-{i}" for i in range(50)]
    assert telemetry.counters.batches_resent >= 1
    assert receiver.attempts == telemetry.counters.batches_sent


async def test_without_receipts_sending_stops_at_the_window(tmp_path: Path) -> None:
    receiver = Receiver(online=True)  # stores, never confirms
    telemetry = service(tmp_path, [], max_bytes=1_000_000, flow=Flow(resend_after=60, window=2))
    (tmp_path / "app.log").touch()
    telemetry.configure(NOTHING, [app(0)], {})
    runner = asyncio.create_task(telemetry.run(receiver.publish))
    for round_ in range(4):  # several batches' worth, a flush apart
        await write_lines(tmp_path / "app.log", 5, prefix=f"r{round_}")
        await asyncio.sleep(0.4)
    await asyncio.sleep(0.5)
    assert len(receiver.logs()) == 2
    assert telemetry.stats().unconfirmed_batches == 2
    assert telemetry.stats().buffered_records == 20  # nothing left the buffer unconfirmed
    await telemetry.close()
    await runner


async def test_close_leaves_no_task_behind(tmp_path: Path) -> None:
    telemetry = service(tmp_path, [], max_bytes=1_000_000)
    telemetry.configure(configuration(), [], {})
    before = asyncio.all_tasks()
    runner = asyncio.create_task(telemetry.run(Receiver(online=True).publish))
    await asyncio.sleep(0.3)
    await telemetry.close()
    await runner
    assert asyncio.all_tasks() == before


async def test_connection_restored_cuts_the_back_off_short(tmp_path: Path) -> None:
    receiver = Receiver()
    telemetry = TelemetryService(
        tmp_path / "state",
        "dev-1",
        max_bytes=1_000_000,
        system=SystemCollector(sample_root(tmp_path / "root"), clock_ticks=100),
        retry=Backoff(BackoffPolicy(base=60.0, cap=60.0, jitter=0.5)),
    )
    telemetry.configure(configuration(["node_load1"]), [], {})
    runner = asyncio.create_task(telemetry.run(receiver.publish))
    await wait_until(lambda: receiver.attempts >= 1)  # failed; now backing off for 30-60 s
    receiver.online = True
    telemetry.connection_restored()
    await wait_until(lambda: len(receiver.metrics()) >= 1, limit=5)
    await telemetry.close()
    await runner

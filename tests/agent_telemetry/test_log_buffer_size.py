"""Upstream's ``bufferSize`` of a ``logCollection`` target: the lines of that target waiting
in the device's buffer keep at most that many KiB, the oldest dropped and counted."""

import asyncio
import functools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from flotta.agent.telemetry.batching import Kind, record_body
from flotta.agent.telemetry.buffer import ROW_OVERHEAD, TelemetryBuffer
from flotta.agent.telemetry.service import TelemetryService, log_target_limits
from flotta.schemas.codec import decode
from flotta.schemas.wire import DesiredConfiguration, DesiredWorkload, LogLine, LogsBatch
from flotta.schemas.wire.desired import LogCollectionSettings
from tests.agent_telemetry.log_sources import write_lines
from tests.agent_telemetry.receiver import Receiver
from tests.agent_telemetry.test_service import NOTHING, service
from tests.agent_telemetry.waiting import wait_until

LINE = 100  # bytes of every record body below


def log(workload: str, index: int) -> bytes:
    body = record_body(
        LogLine(workload=workload, time=datetime(2024, 1, 1, tzinfo=UTC), line=f"{index:04d}")
    )
    return body + b" " * (LINE - len(body))  # same size each (JSON ignores the padding)


def texts(buffer: TelemetryBuffer) -> list[tuple[str, str]]:
    lines = []
    while (batch := buffer.next_batch(Kind.LOGS)) is not None:
        lines += [(x.workload, x.line) for x in decode(LogsBatch, batch.payload).lines]
        buffer.acknowledge(Kind.LOGS, batch.sequence)
    return lines


def took(telemetry: TelemetryService, lines: int) -> bool:
    """The service took that many lines: buffered or dropped."""
    stats = telemetry.stats()
    return stats.buffered_records + stats.dropped_records >= lines


def new_buffer(tmp_path: Path, **bounds: int) -> TelemetryBuffer:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000)
    buffer.set_limits(max_bytes=10_000_000, max_age_seconds=None, bucket_bytes=bounds)
    return buffer


def test_a_targets_waiting_lines_keep_to_its_bound_the_oldest_dropped(tmp_path: Path) -> None:
    room = 5 * (LINE + ROW_OVERHEAD)
    buffer = new_buffer(tmp_path, syslog=room)
    for i in range(20):
        buffer.add(Kind.LOGS, [log("a", i)], buckets=["syslog"])
        buffer.add(Kind.LOGS, [log("b", i)], buckets=["other"])  # no bound of its own
        buffer.add(Kind.LOGS, [log("c", i)])  # no target
    stats = buffer.stats()
    assert stats.dropped_records == 15
    assert stats.dropped_by_bucket == {"syslog": 15}
    lines = texts(buffer)
    assert [t for w, t in lines if w == "a"] == [f"{i:04d}" for i in range(15, 20)]
    assert [t for w, t in lines if w == "b"] == [f"{i:04d}" for i in range(20)]
    assert [t for w, t in lines if w == "c"] == [f"{i:04d}" for i in range(20)]
    buffer.close()


def test_the_drops_are_reported_in_the_next_logs_batch(tmp_path: Path) -> None:
    buffer = new_buffer(tmp_path, syslog=2 * (LINE + ROW_OVERHEAD))
    buffer.add(Kind.LOGS, [log("a", i) for i in range(3)], buckets=["syslog"] * 3)
    buffer.add(Kind.LOGS, [log("a", 3)], buckets=["syslog"])
    batch = buffer.next_batch(Kind.LOGS)
    assert batch is not None
    assert decode(LogsBatch, batch.payload).dropped == 2
    assert [x.line for x in decode(LogsBatch, batch.payload).lines] == ["0002", "0003"]
    buffer.close()


def test_what_one_flush_brings_always_enters(tmp_path: Path) -> None:
    # a second of lines while online is never cut, however large: what waited behind is
    buffer = new_buffer(tmp_path, syslog=2 * (LINE + ROW_OVERHEAD))
    buffer.add(Kind.LOGS, [log("a", 0)], buckets=["syslog"])
    buffer.add(Kind.LOGS, [log("a", i) for i in range(1, 11)], buckets=["syslog"] * 10)
    assert buffer.stats().dropped_by_bucket == {"syslog": 1}
    assert [t for _, t in texts(buffer)] == [f"{i:04d}" for i in range(1, 11)]
    buffer.close()


def test_lines_formed_into_a_batch_leave_their_targets_count(tmp_path: Path) -> None:
    buffer = new_buffer(tmp_path, syslog=3 * (LINE + ROW_OVERHEAD))
    buffer.add(Kind.LOGS, [log("a", i) for i in range(3)], buckets=["syslog"] * 3)
    formed = buffer.next_batch(Kind.LOGS)  # sent, waiting for its receipt
    assert formed is not None
    buffer.add(Kind.LOGS, [log("a", i) for i in range(3, 6)], buckets=["syslog"] * 3)
    assert buffer.stats().dropped_records == 0
    buffer.add(Kind.LOGS, [log("a", 6)], buckets=["syslog"])
    assert buffer.stats().dropped_by_bucket == {"syslog": 1}
    buffer.close()


def test_a_smaller_bound_trims_at_once_and_counts_survive_a_restart(tmp_path: Path) -> None:
    buffer = new_buffer(tmp_path, syslog=100 * (LINE + ROW_OVERHEAD))
    buffer.add(Kind.LOGS, [log("a", i) for i in range(10)], buckets=["syslog"] * 10)
    buffer.set_limits(
        max_bytes=10_000_000,
        max_age_seconds=None,
        bucket_bytes={"syslog": 4 * (LINE + ROW_OVERHEAD)},
    )
    assert buffer.stats().dropped_by_bucket == {"syslog": 6}
    buffer.close()
    reopened = new_buffer(tmp_path, syslog=4 * (LINE + ROW_OVERHEAD))
    assert reopened.stats().dropped_by_bucket == {"syslog": 6}
    reopened.add(Kind.LOGS, [log("a", 10)], buckets=["syslog"])  # counted from the file
    assert reopened.stats().dropped_by_bucket == {"syslog": 7}
    assert [t for _, t in texts(reopened)] == ["0007", "0008", "0009", "0010"]
    reopened.close()


def test_the_global_bound_keeps_the_targets_count_right(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=5 * (LINE + ROW_OVERHEAD))
    buffer.set_limits(
        max_bytes=5 * (LINE + ROW_OVERHEAD),
        max_age_seconds=None,
        bucket_bytes={"syslog": 4 * (LINE + ROW_OVERHEAD)},
    )
    buffer.add(Kind.LOGS, [log("a", i) for i in range(4)], buckets=["syslog"] * 4)
    buffer.add(Kind.LOGS, [log("c", i) for i in range(3)])  # the buffer's bound drops 2 of a
    assert buffer.stats().dropped_by_bucket == {}
    buffer.add(Kind.LOGS, [log("a", 4)], buckets=["syslog"])  # 3 of a wait: room for it
    assert buffer.stats().dropped_by_bucket == {}
    buffer.close()


def test_a_buffer_from_before_target_bounds_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
        "created_ms INTEGER NOT NULL, body BLOB NOT NULL)"
    )
    old.execute(
        "INSERT INTO records (kind, created_ms, body) VALUES ('logs', 1, ?)", (log("a", 0),)
    )
    old.commit()
    old.close()
    buffer = new_buffer(tmp_path, syslog=LINE + ROW_OVERHEAD)
    buffer.add(Kind.LOGS, [log("a", 1)], buckets=["syslog"])
    assert buffer.stats().dropped_records == 0  # the old line has no target
    assert [t for _, t in texts(buffer)] == ["0000", "0001"]
    buffer.close()


def test_the_bounds_come_from_the_log_collection_entries() -> None:
    configuration = DesiredConfiguration(
        log_collection={
            "syslog": LogCollectionSettings(buffer_size_kib=12),
            "big": LogCollectionSettings(buffer_size_kib=1024),
        }
    )
    assert log_target_limits(configuration) == {"syslog": 12 * 1024, "big": 1024 * 1024}


async def test_offline_a_workloads_lines_keep_to_its_targets_buffer_size(tmp_path: Path) -> None:
    processes: list[asyncio.subprocess.Process] = []
    receiver = Receiver()
    telemetry = service(tmp_path, processes, max_bytes=50_000_000)
    receiver.confirm = telemetry.receipt
    (tmp_path / "app.log").touch()
    configuration = DesiredConfiguration(
        metrics=NOTHING.metrics,
        log_collection={"remote": LogCollectionSettings(buffer_size_kib=4)},
    )
    workload = DesiredWorkload(
        name="app", namespace="default", pod_spec={}, log_collection="remote"
    )
    telemetry.configure(configuration, [workload], {})
    runner = asyncio.create_task(telemetry.run(receiver.publish))
    written = [f"burst{n}-{i}" for n in range(6) for i in range(100)]
    try:
        for n in range(6):  # six flushes of 100 lines (about 11 KiB each) while offline
            await write_lines(tmp_path / "app.log", 100, prefix=f"burst{n}")
            await wait_until(functools.partial(took, telemetry, 100 * (n + 1)))
            await asyncio.sleep(0.3)  # past the flush interval: the next burst is a flush apart
        dropped = telemetry.stats().dropped_by_log_target["remote"]
        receiver.online = True
        await wait_until(lambda: telemetry.stats().buffered_records == 0)
    finally:
        await telemetry.close()
        await runner
    assert dropped == telemetry.stats().dropped_records > 0
    logs = receiver.logs()
    lines = [x.line for batch in logs for x in batch.lines]
    assert len(lines) == 600 - dropped
    assert sum(b.dropped for b in logs) == dropped
    # the first batch was formed (and could not leave) before the bound bit; behind it, the
    # newest lines: at most the last flush and 4 KiB of lines waiting before it
    first = [x.line for x in logs[0].lines]
    assert first == written[: len(first)]
    waited = lines[len(first) :]
    assert waited == written[600 - len(waited) :]
    record = len(record_body(logs[0].lines[0])) + ROW_OVERHEAD
    assert len(waited) <= 100 + 4 * 1024 // record + 1

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flotta.agent.telemetry.batching import Kind, record_body
from flotta.agent.telemetry.buffer import ROW_OVERHEAD, Flow, TelemetryBuffer
from flotta.schemas.codec import decode
from flotta.schemas.wire import LogLine, LogsBatch, MetricSample, MetricsBatch

REPO = Path(__file__).resolve().parents[2]


def metric(index: int) -> bytes:
    return record_body(
        MetricSample(name="m", labels={"i": str(index)}, value=index, timestamp_ms=1)
    )


def indices(batch_payload: bytes) -> list[int]:
    return [int(s.labels["i"]) for s in decode(MetricsBatch, batch_payload).samples]


def drain(buffer: TelemetryBuffer, kind: Kind = Kind.METRICS) -> list[bytes]:
    payloads = []
    while (batch := buffer.next_batch(kind)) is not None:
        payloads.append(batch.payload)
        buffer.acknowledge(kind, batch.sequence)
    return payloads


def test_records_leave_in_order_with_increasing_sequences(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000)
    buffer.add(Kind.METRICS, [metric(i) for i in range(5)])
    first = buffer.next_batch(Kind.METRICS)
    assert first is not None
    assert first.records == 5
    buffer.add(Kind.METRICS, [metric(i) for i in range(5, 8)])
    # not acknowledged: the same batch again, not a new one
    assert buffer.next_batch(Kind.METRICS) == first
    buffer.acknowledge(Kind.METRICS, first.sequence)
    second = buffer.next_batch(Kind.METRICS)
    assert second is not None
    assert second.sequence == first.sequence + 1
    assert indices(first.payload) + indices(second.payload) == list(range(8))
    assert decode(MetricsBatch, second.payload).stream == buffer.stream
    buffer.acknowledge(Kind.METRICS, second.sequence)
    assert buffer.next_batch(Kind.METRICS) is None
    assert buffer.stats().buffered_records == 0
    assert buffer.stats().buffered_bytes == 0
    buffer.close()


def test_kinds_are_separate(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000)
    line = LogLine(workload="w", time=datetime(2026, 1, 1, tzinfo=UTC), line="hello")
    buffer.add(Kind.LOGS, [record_body(line)])
    assert buffer.next_batch(Kind.METRICS) is None
    logs = buffer.next_batch(Kind.LOGS)
    assert logs is not None
    assert decode(LogsBatch, logs.payload).lines == [line]
    assert logs.sequence == 0
    buffer.close()


def test_a_formed_batch_is_resent_byte_identical_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = TelemetryBuffer(path, max_bytes=10_000_000)
    buffer.add(Kind.METRICS, [metric(i) for i in range(3)])
    batch = buffer.next_batch(Kind.METRICS)
    stream = buffer.stream
    buffer.add(Kind.METRICS, [metric(3)])
    buffer.close()

    reopened = TelemetryBuffer(path, max_bytes=10_000_000)
    assert reopened.stream == stream
    assert reopened.next_batch(Kind.METRICS) == batch
    assert reopened.stats().buffered_records == 4
    reopened.close()


def test_at_the_bound_the_oldest_go_and_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    record_size = len(metric(100)) + ROW_OVERHEAD
    buffer = TelemetryBuffer(path, max_bytes=record_size * 50)
    dropped = 0
    for start in range(100, 300, 20):
        dropped += buffer.add(Kind.METRICS, [metric(i) for i in range(start, start + 20)])
    stats = buffer.stats()
    assert stats.buffered_bytes <= record_size * 50
    assert dropped == stats.dropped_records == 200 - stats.buffered_records
    assert stats.buffered_records == 50
    buffer.close()

    reopened = TelemetryBuffer(path, max_bytes=record_size * 1000)
    assert reopened.stats().dropped_records == dropped
    payloads = drain(reopened)
    batches = [decode(MetricsBatch, payload) for payload in payloads]
    # the newest survive, and the drop is reported once, in the next batch
    assert [i for payload in payloads for i in indices(payload)] == list(range(250, 300))
    assert [b.dropped for b in batches] == [dropped]
    reopened.add(Kind.METRICS, [metric(1)])
    assert [decode(MetricsBatch, p).dropped for p in drain(reopened)] == [0]
    reopened.close()


def test_formed_batches_are_dropped_too_when_only_they_remain(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000)
    buffer.add(Kind.METRICS, [metric(i) for i in range(10)])
    assert buffer.next_batch(Kind.METRICS) is not None
    buffer.set_limits(max_bytes=1, max_age_seconds=None)
    stats = buffer.stats()
    assert (stats.buffered_records, stats.dropped_records, stats.batches_waiting) == (0, 10, 0)
    buffer.close()


def test_retention_age_drops_old_records(tmp_path: Path) -> None:
    now = [1000.0]
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000, clock=lambda: now[0])
    buffer.add(Kind.METRICS, [metric(i) for i in range(3)])
    now[0] += 3600
    buffer.add(Kind.METRICS, [metric(i) for i in range(3, 5)])
    buffer.set_limits(max_bytes=10_000_000, max_age_seconds=1800)
    assert buffer.stats().dropped_records == 3
    (payload,) = drain(buffer)
    assert indices(payload) == [3, 4]
    assert decode(MetricsBatch, payload).dropped == 3
    buffer.close()


def test_batches_stay_under_the_payload_limit(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=100_000_000)
    lines = [
        record_body(
            LogLine(
                workload="w", time=datetime(2026, 1, 1, tzinfo=UTC), line=f"{i:05d}" + "x" * 16000
            )
        )
        for i in range(40)
    ]
    buffer.add(Kind.LOGS, lines)
    payloads = drain(buffer, Kind.LOGS)
    assert len(payloads) >= 3
    assert all(len(p) <= LogsBatch.MAX_BYTES for p in payloads)
    received = [line.line[:5] for p in payloads for line in decode(LogsBatch, p).lines]
    assert received == [f"{i:05d}" for i in range(40)]
    buffer.close()


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = TelemetryBuffer(path, max_bytes=1000)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert buffer._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    buffer.close()


def test_an_unreadable_file_is_moved_aside_and_a_new_stream_starts(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not a database" * 100)
    buffer = TelemetryBuffer(path, max_bytes=1000)
    assert buffer.stats().buffered_records == 0
    assert len(list(tmp_path.glob("b.db.corrupt-*"))) == 1
    buffer.close()


def writer(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / p) for p in ("schemas", "agent", "."))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agent_telemetry.buffer_writer", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


@pytest.mark.parametrize("kill_after", [3, 17])
def test_sigkill_mid_transaction_keeps_every_commit_whole(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "b.db"
    with writer("insert", str(path), "200") as process:
        assert process.stdout is not None
        committed = -1
        for line in process.stdout:
            committed = int(line.split()[1])
            if committed >= kill_after:
                break
        time.sleep(0.013)  # lands inside a later transaction most of the time
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert committed >= kill_after
    reopened = TelemetryBuffer(path, max_bytes=1 << 30)
    assert reopened._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts: dict[int, int] = {}
    for payload in drain(reopened):
        for sample in decode(MetricsBatch, payload).samples:
            counts[sample.timestamp_ms] = counts.get(sample.timestamp_ms, 0) + 1
    assert set(counts.values()) == {200}  # no transaction half there
    assert sorted(counts) == list(range(len(counts)))
    assert len(counts) >= committed + 1
    reopened.close()


def test_sigkill_inside_an_open_transaction_leaves_only_committed_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    with writer("mid", str(path)) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "inside"
        process.send_signal(signal.SIGKILL)
        process.wait()
    reopened = TelemetryBuffer(path, max_bytes=1 << 30)
    assert reopened._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert reopened.stats().buffered_records == 10
    (payload,) = drain(reopened)
    assert {s.timestamp_ms for s in decode(MetricsBatch, payload).samples} == {0}
    reopened.close()


def test_killed_while_a_batch_is_in_flight_the_same_batch_is_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = TelemetryBuffer(path, max_bytes=1 << 20)
    buffer.add(Kind.METRICS, [metric(i) for i in range(30)])
    buffer.close()
    with writer("form", str(path)) as process:
        assert process.stdout is not None
        _, _, sequence, digest = process.stdout.readline().split()
        process.send_signal(signal.SIGKILL)
        process.wait()
    reopened = TelemetryBuffer(path, max_bytes=1 << 20)
    batch = reopened.next_batch(Kind.METRICS)
    assert batch is not None
    assert batch.sequence == int(sequence)
    assert hashlib.sha256(batch.payload).hexdigest() == digest
    assert indices(batch.payload) == list(range(30))
    reopened.close()


def test_log_cursors_are_stored_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = TelemetryBuffer(path, max_bytes=10_000_000)
    assert buffer.cursor("app") is None
    line = record_body(LogLine(workload="app", time=datetime(2026, 1, 1, tzinfo=UTC), line="x"))
    buffer.add(Kind.LOGS, [line], cursors={"app": ("2026-01-01T00:00:00+00:00", 1)})
    buffer.add(Kind.LOGS, [line, line], cursors={"app": ("2026-01-01T00:00:05+00:00", 2)})
    buffer.close()
    reopened = TelemetryBuffer(path, max_bytes=10_000_000)
    assert reopened.cursor("app") == ("2026-01-01T00:00:05+00:00", 2)
    assert reopened.stats().buffered_records == 3
    reopened.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_sent_batch_waits_for_its_receipt_and_is_offered_again_when_overdue(
    tmp_path: Path,
) -> None:
    clock = Clock()
    flow = Flow(resend_after=60, window=2)
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000, clock=clock)
    buffer.add(Kind.METRICS, [metric(0)])
    first = buffer.next_batch(Kind.METRICS, flow)
    assert first is not None
    assert not first.resend
    buffer.mark_sent(Kind.METRICS, first.sequence)
    buffer.add(Kind.METRICS, [metric(1)])
    second = buffer.next_batch(Kind.METRICS, flow)
    assert second is not None
    assert second.sequence == first.sequence + 1
    buffer.mark_sent(Kind.METRICS, second.sequence)
    buffer.add(Kind.METRICS, [metric(2)])
    assert buffer.next_batch(Kind.METRICS, flow) is None  # window full
    assert buffer.stats().batches_unconfirmed == 2
    assert buffer.stats().buffered_records == 3

    clock.now += 61
    again = buffer.next_batch(Kind.METRICS, flow)
    assert again is not None
    assert again.resend
    assert (again.sequence, again.payload) == (first.sequence, first.payload)

    assert buffer.confirm(Kind.METRICS, buffer.stream, [first.sequence, second.sequence]) == 2
    assert buffer.confirm(Kind.METRICS, buffer.stream, [first.sequence]) == 0  # a duplicate
    third = buffer.next_batch(Kind.METRICS, flow)
    assert third is not None
    assert indices(third.payload) == [2]
    buffer.close()


def test_a_receipt_for_another_stream_or_kind_confirms_nothing(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000)
    buffer.add(Kind.METRICS, [metric(0)])
    batch = buffer.next_batch(Kind.METRICS, Flow())
    assert batch is not None
    buffer.mark_sent(Kind.METRICS, batch.sequence)
    assert buffer.confirm(Kind.METRICS, "0123456789abcdef", [batch.sequence]) == 0
    assert buffer.confirm(Kind.LOGS, buffer.stream, [batch.sequence]) == 0
    assert buffer.stats().batches_unconfirmed == 1
    buffer.close()


def test_unconfirmed_batches_survive_a_restart_and_wait_again_after_a_reconnect(
    tmp_path: Path,
) -> None:
    clock = Clock()
    flow = Flow(resend_after=60, window=4)
    buffer = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000, clock=clock)
    buffer.add(Kind.LOGS, [b'{"workload":"w","time":"2026-01-01T00:00:00Z","line":"x"}'])
    batch = buffer.next_batch(Kind.LOGS, flow)
    assert batch is not None
    buffer.mark_sent(Kind.LOGS, batch.sequence)
    buffer.close()

    clock.now += 600
    reopened = TelemetryBuffer(tmp_path / "b.db", max_bytes=10_000_000, clock=clock)
    assert reopened.stats().batches_unconfirmed == 1
    reopened.restart_resend_clocks()  # connected again: queued receipts arrive first
    assert reopened.next_batch(Kind.LOGS, flow) is None
    clock.now += 61
    overdue = reopened.next_batch(Kind.LOGS, flow)
    assert overdue is not None
    assert overdue.payload == batch.payload
    reopened.close()


def test_a_buffer_from_before_receipts_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE batches (kind TEXT NOT NULL, sequence INTEGER NOT NULL, "
        "records INTEGER NOT NULL, dropped INTEGER NOT NULL, payload BLOB NOT NULL, "
        "PRIMARY KEY (kind, sequence));"
        "INSERT INTO batches VALUES ('metrics', 7, 1, 0, x'7b7d');"
    )
    old.close()
    buffer = TelemetryBuffer(path, max_bytes=10_000_000)
    waiting = buffer.next_batch(Kind.METRICS, Flow())
    assert waiting is not None
    assert (waiting.sequence, waiting.resend) == (7, False)
    buffer.close()

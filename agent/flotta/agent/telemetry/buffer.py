"""The on-disk telemetry buffer: SQLite in WAL mode, bounded in bytes and age.

Records wait in ``records`` until the sender forms a batch: one transaction moves the oldest
records into ``batches`` as the encoded payload with the next sequence number, so a batch
keeps its bytes (and its message id) however often it is resent, across restarts too. A
batch leaves the buffer only when :meth:`TelemetryBuffer.acknowledge` or
:meth:`TelemetryBuffer.confirm` is called for it.

Confirmation: a batch the broker acknowledged is only marked sent (``sent_ms``); the bridge's
receipt removes it (:meth:`TelemetryBuffer.confirm`). A sent batch with no receipt within
``resend_after`` seconds is offered again, and at most ``window`` sent batches of a kind wait
for receipts at a time, so a bridge outage holds the buffer back instead of flooding the
broker with copies.

Durability: ``synchronous=FULL``. With ``NORMAL`` a WAL commit is only synced at checkpoint,
so a power cut can roll back a committed transaction. Rolling back the forming of a batch
that was already sent would re-use its sequence number for different records, and the
bridge would discard them as duplicates: silent loss. ``FULL`` makes every commit durable;
the cost stays small because every write is one transaction per collection round or per
batch, never one per sample.

Bound: records count ``len(body) + ROW_OVERHEAD`` bytes, batches ``len(payload)``. Past the
bound the oldest go first: formed batches (they hold the oldest records of their kind), then
records; past the retention age, records. Every dropped record is counted per kind,
persisted, and reported once in the next batch of its kind (a dropped batch hands the drops
it was to report on to the next one).

Buckets: a record may belong to a bucket (the log target a workload's lines go to), and a
bucket may have a bound of its own (upstream's ``bufferSize``): the records of that bucket
waiting for a batch keep at most that many bytes, the oldest going first, except that the
records one :meth:`TelemetryBuffer.add` brings always enter (a flush of lines while the
device is online is never cut; what waits behind it is). Those drops are counted per kind as
above and per bucket. Records already formed into a batch no longer count in their bucket.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flotta.agent.sqlite_file import open_store, transaction
from flotta.agent.telemetry.batching import (
    BATCH_MAX_BYTES,
    ENVELOPE_BYTES,
    MAX_RECORDS_PER_BATCH,
    Kind,
    build_batch,
)
from flotta.agent.telemetry.errors import BufferStoreError
from flotta.agent.telemetry.staging import Cursor
from flotta.schemas.errors import PayloadTooLargeError

log = logging.getLogger(__name__)

ROW_OVERHEAD = 24
_DROP_CHUNK = 512
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    bucket TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS records_by_kind ON records (kind, id);
CREATE TABLE IF NOT EXISTS cursors (
    workload TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    kind TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    records INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sent_ms INTEGER,
    PRIMARY KEY (kind, sequence)
);
"""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    kind: Kind
    sequence: int
    records: int
    payload: bytes
    resend: bool = False  # sent before, no receipt came in time


@dataclass(frozen=True, slots=True)
class Flow:
    """How sent batches wait for their receipts (see the module docstring)."""

    resend_after: float = 60.0
    window: int = 16


@dataclass(frozen=True, slots=True)
class BufferStats:
    buffered_records: int
    buffered_bytes: int
    dropped_records: int
    batches_waiting: int
    batches_unconfirmed: int = 0
    dropped_by_bucket: Mapping[str, int] = field(default_factory=dict)
    """Records each bucket's own bound dropped (also in ``dropped_records``)."""


def _upgrade(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(batches)")}
    if "sent_ms" not in columns:  # a buffer written before receipts existed
        db.execute("ALTER TABLE batches ADD COLUMN sent_ms INTEGER")
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    if "bucket" not in columns:  # a buffer written before log targets had bounds
        db.execute("ALTER TABLE records ADD COLUMN bucket TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX IF NOT EXISTS records_by_bucket ON records (bucket, id)")


class TelemetryBuffer:
    """Thread-safe: every method takes the lock, so the async side may call it from
    worker threads."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._db = self._open()
        self._bytes = self._records = self._dropped = 0
        self._bucket_limits: dict[str, int] = {}
        self._bucket_bytes: dict[str, int] = {}
        self._bucket_dropped: dict[str, int] = {}
        self._stream = self._load_state()

    # ---- opening ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            return open_store(
                self.path,
                schema=_SCHEMA,
                what="telemetry buffer",
                upgrade=_upgrade,
                any_thread=True,
                clock=self._clock,
            )
        except (OSError, sqlite3.Error) as exc:
            raise BufferStoreError(str(self.path), str(exc)) from exc

    def _load_state(self) -> str:
        with self._transaction() as db:
            stream = self._meta(db, "stream", "")
            if not stream:
                stream = secrets.token_hex(8)
                self._set_meta(db, "stream", stream)
        self._read_counters()
        return stream

    def _read_counters(self) -> None:
        """Bytes and records held, and records dropped so far, from the database."""
        db = self._db
        record_bytes, records = db.execute(
            "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM records"
        ).fetchone()
        batch_bytes, batch_records = db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), COALESCE(SUM(records), 0) FROM batches"
        ).fetchone()
        dropped = sum(int(self._meta(db, f"dropped_total:{kind}", "0")) for kind in Kind)
        self._bytes = int(record_bytes) + ROW_OVERHEAD * int(records) + int(batch_bytes)
        self._records = int(records) + int(batch_records)
        self._dropped = dropped
        self._bucket_bytes = {
            str(bucket): int(size)
            for bucket, size in db.execute(
                "SELECT bucket, SUM(LENGTH(body)) + ? * COUNT(*) FROM records "
                "WHERE bucket != '' GROUP BY bucket",
                (ROW_OVERHEAD,),
            )
        }
        self._bucket_dropped = {
            str(key).removeprefix("dropped_bucket:"): int(value)
            for key, value in db.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'dropped_bucket:%'"
            )
        }

    # ---- public ----------------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return self._stream

    def set_limits(
        self,
        *,
        max_bytes: int,
        max_age_seconds: float | None,
        bucket_bytes: Mapping[str, int] | None = None,
    ) -> None:
        """The bounds: of the whole buffer, of the age of records, and of the records of each
        bucket named in ``bucket_bytes`` (others have none of their own)."""
        with self._lock:
            self.max_bytes = max(1, max_bytes)
            self.max_age_seconds = max_age_seconds
            self._bucket_limits = {b: max(0, size) for b, size in (bucket_bytes or {}).items()}
            with self._transaction() as db:
                dropped = dict.fromkeys(Kind, 0)
                self._trim_buckets(db, self._bucket_limits, dropped)
                self._enforce_bounds(db, dropped)

    def add(
        self,
        kind: Kind,
        bodies: Sequence[bytes],
        *,
        dropped_upstream: int = 0,
        cursors: Mapping[str, Cursor] | None = None,
        buckets: Sequence[str] | None = None,
    ) -> int:
        """Store records in one transaction, with the log cursors they move; returns how
        many records were dropped: by the bounds, plus ``dropped_upstream`` (lost before
        reaching the buffer, counted here). ``buckets``: each record's bucket ("" for none),
        in the order of ``bodies``."""
        if not bodies and not dropped_upstream and not cursors:
            return 0
        now_ms = int(self._clock() * 1000)
        records = list(zip(bodies, buckets or [""] * len(bodies), strict=True))
        with self._lock, self._transaction() as db:
            dropped = dict.fromkeys(Kind, 0)
            dropped[kind] += dropped_upstream
            arriving: dict[str, int] = {}
            for body, bucket in records:
                if bucket:
                    arriving[bucket] = arriving.get(bucket, 0) + len(body) + ROW_OVERHEAD
            # what waits in a bounded bucket makes room for what arrives, as far as it can
            self._trim_buckets(
                db,
                {
                    bucket: max(0, self._bucket_limits[bucket] - size)
                    for bucket, size in arriving.items()
                    if bucket in self._bucket_limits
                },
                dropped,
            )
            db.executemany(
                "INSERT INTO records (kind, created_ms, body, bucket) VALUES (?, ?, ?, ?)",
                [(kind.value, now_ms, body, bucket) for body, bucket in records],
            )
            for bucket, size in arriving.items():
                self._bucket_bytes[bucket] = self._bucket_bytes.get(bucket, 0) + size
            db.executemany(
                "INSERT INTO cursors (workload, time, count) VALUES (?, ?, ?) "
                "ON CONFLICT (workload) DO UPDATE SET time = excluded.time, count = excluded.count",
                [(workload, time, count) for workload, (time, count) in (cursors or {}).items()],
            )
            self._bytes += sum(len(body) + ROW_OVERHEAD for body in bodies)
            self._records += len(bodies)
            return self._enforce_bounds(db, dropped)

    def cursor(self, workload: str) -> Cursor | None:
        """Where the stored logs of a workload end."""
        with self._lock:
            if self._closed:
                raise BufferStoreError(str(self.path), "closed")
            row = self._db.execute(
                "SELECT time, count FROM cursors WHERE workload = ?", (workload,)
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def next_batch(self, kind: Kind, flow: Flow | None = None) -> StoredBatch | None:
        """The batch to send next: a sent one whose receipt is overdue, else the oldest one not
        sent, else a new one formed from records; None while ``flow.window`` sent batches
        wait for receipts. Without ``flow``: the oldest batch, whether sent or not."""
        with self._lock, self._transaction() as db:
            if flow is None:
                row = db.execute(
                    "SELECT sequence, records, payload FROM batches WHERE kind = ? "
                    "ORDER BY sequence LIMIT 1",
                    (kind.value,),
                ).fetchone()
                if row is not None:
                    return StoredBatch(kind, int(row[0]), int(row[1]), bytes(row[2]))
                return self._form_batch(db, kind)
            overdue_ms = int((self._clock() - flow.resend_after) * 1000)
            row = db.execute(
                "SELECT sequence, records, payload FROM batches "
                "WHERE kind = ? AND sent_ms IS NOT NULL AND sent_ms <= ? "
                "ORDER BY sequence LIMIT 1",
                (kind.value, overdue_ms),
            ).fetchone()
            if row is not None:
                return StoredBatch(kind, int(row[0]), int(row[1]), bytes(row[2]), resend=True)
            (in_flight,) = db.execute(
                "SELECT COUNT(*) FROM batches WHERE kind = ? AND sent_ms IS NOT NULL",
                (kind.value,),
            ).fetchone()
            if int(in_flight) >= flow.window:
                return None
            row = db.execute(
                "SELECT sequence, records, payload FROM batches "
                "WHERE kind = ? AND sent_ms IS NULL ORDER BY sequence LIMIT 1",
                (kind.value,),
            ).fetchone()
            if row is not None:
                return StoredBatch(kind, int(row[0]), int(row[1]), bytes(row[2]))
            return self._form_batch(db, kind)

    def mark_sent(self, kind: Kind, sequence: int) -> None:
        """The broker took the batch: it now waits for its receipt."""
        now_ms = int(self._clock() * 1000)
        with self._lock, self._transaction() as db:
            db.execute(
                "UPDATE batches SET sent_ms = ? WHERE kind = ? AND sequence = ?",
                (now_ms, kind.value, sequence),
            )

    def restart_resend_clocks(self) -> None:
        """After a reconnect, receipts queued for the device arrive first: give them time."""
        now_ms = int(self._clock() * 1000)
        with self._lock, self._transaction() as db:
            db.execute("UPDATE batches SET sent_ms = ? WHERE sent_ms IS NOT NULL", (now_ms,))

    def acknowledge(self, kind: Kind, sequence: int) -> None:
        with self._lock, self._transaction() as db:
            self._remove(db, kind, sequence)

    def confirm(self, kind: Kind, stream: str, sequences: Sequence[int]) -> int:
        """Remove the batches a receipt names; how many were still here. A receipt for
        another stream (a buffer since wiped) confirms nothing."""
        if stream != self._stream:
            return 0
        with self._lock, self._transaction() as db:
            return sum(self._remove(db, kind, sequence) for sequence in set(sequences))

    def _remove(self, db: sqlite3.Connection, kind: Kind, sequence: int) -> bool:
        row = db.execute(
            "SELECT records, LENGTH(payload) FROM batches WHERE kind = ? AND sequence = ?",
            (kind.value, sequence),
        ).fetchone()
        if row is None:
            return False
        db.execute("DELETE FROM batches WHERE kind = ? AND sequence = ?", (kind.value, sequence))
        self._records -= int(row[0])
        self._bytes -= int(row[1])
        return True

    def stats(self) -> BufferStats:
        with self._lock:
            by_bucket = dict(self._bucket_dropped)
            if self._closed:
                return BufferStats(
                    self._records, self._bytes, self._dropped, 0, dropped_by_bucket=by_bucket
                )
            waiting, unconfirmed = self._db.execute(
                "SELECT COUNT(*), COUNT(sent_ms) FROM batches"
            ).fetchone()
            return BufferStats(
                self._records,
                self._bytes,
                self._dropped,
                int(waiting),
                int(unconfirmed),
                dropped_by_bucket=by_bucket,
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    # ---- internals -------------------------------------------------------------------------

    def _form_batch(self, db: sqlite3.Connection, kind: Kind) -> StoredBatch | None:
        budget = BATCH_MAX_BYTES[kind] - ENVELOPE_BYTES
        rows: list[tuple[int, bytes, str]] = []
        used = 0
        cursor = db.execute(
            "SELECT id, body, bucket FROM records WHERE kind = ? ORDER BY id LIMIT ?",
            (kind.value, MAX_RECORDS_PER_BATCH),
        )
        for record_id, body, bucket in cursor:
            if rows and used + len(body) + 1 > budget:
                break
            rows.append((int(record_id), bytes(body), str(bucket)))
            used += len(body) + 1
        cursor.close()
        if not rows:
            return None
        sequence = int(self._meta(db, f"next_sequence:{kind}", "0"))
        dropped = int(self._meta(db, f"dropped_pending:{kind}", "0"))
        while True:
            try:
                payload = build_batch(
                    kind,
                    stream=self._stream,
                    sequence=sequence,
                    bodies=[body for _, body, _ in rows],
                    dropped=dropped,
                )
                break
            except PayloadTooLargeError:
                if len(rows) == 1:
                    raise
                rows = rows[: len(rows) // 2]
        db.execute("DELETE FROM records WHERE kind = ? AND id <= ?", (kind.value, rows[-1][0]))
        db.execute(
            "INSERT INTO batches (kind, sequence, records, dropped, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            (kind.value, sequence, len(rows), dropped, payload),
        )
        self._set_meta(db, f"next_sequence:{kind}", str(sequence + 1))
        self._set_meta(db, f"dropped_pending:{kind}", "0")
        self._bytes += len(payload) - sum(len(body) + ROW_OVERHEAD for _, body, _ in rows)
        self._leave_buckets((bucket, len(body)) for _, body, bucket in rows)
        return StoredBatch(kind, sequence, len(rows), payload)

    def _enforce_bounds(
        self, db: sqlite3.Connection, dropped: dict[Kind, int] | None = None
    ) -> int:
        """Apply the buffer's bounds, then count and persist every drop in ``dropped`` (those
        made before, by bucket bounds or upstream, included); returns how many there were."""
        dropped = dropped if dropped is not None else dict.fromkeys(Kind, 0)
        if self.max_age_seconds is not None:
            cutoff_ms = int((self._clock() - self.max_age_seconds) * 1000)
            while self._drop_oldest_records(db, dropped, lambda created: created < cutoff_ms):
                pass
        # formed batches hold the oldest records of their kind: they go first
        while self._bytes > self.max_bytes and self._drop_batch(db, dropped):
            pass
        while self._bytes > self.max_bytes and self._drop_oldest_records(
            db, dropped, lambda _: self._bytes > self.max_bytes
        ):
            pass
        for kind, count in dropped.items():
            if count:
                for key in (f"dropped_pending:{kind}", f"dropped_total:{kind}"):
                    self._set_meta(db, key, str(int(self._meta(db, key, "0")) + count))
        total = sum(dropped.values())
        self._dropped += total
        return total

    def _drop_oldest_records(
        self, db: sqlite3.Connection, dropped: dict[Kind, int], wanted: Callable[[int], bool]
    ) -> bool:
        """Drop records from the oldest on while ``wanted(created_ms)`` holds, one chunk at a
        time; returns whether the whole chunk went (so there may be more to drop)."""
        rows = db.execute(
            "SELECT id, kind, created_ms, LENGTH(body), bucket FROM records ORDER BY id LIMIT ?",
            (_DROP_CHUNK,),
        ).fetchall()
        last_id = None
        gone: list[tuple[str, int]] = []
        for record_id, kind, created_ms, size, bucket in rows:
            if not wanted(int(created_ms)):
                break
            last_id = int(record_id)
            dropped[Kind(kind)] += 1
            self._bytes -= int(size) + ROW_OVERHEAD
            self._records -= 1
            gone.append((str(bucket), int(size)))
        if last_id is not None:
            db.execute("DELETE FROM records WHERE id <= ?", (last_id,))
        self._leave_buckets(gone)
        return last_id is not None and last_id == int(rows[-1][0])

    def _trim_buckets(
        self, db: sqlite3.Connection, room: Mapping[str, int], dropped: dict[Kind, int]
    ) -> None:
        """Drop the oldest records of each bucket in ``room`` until it holds at most that
        many bytes; counted in ``dropped`` and per bucket (persisted)."""
        for bucket, limit in room.items():
            count = 0
            while self._bucket_bytes.get(bucket, 0) > limit:
                rows = db.execute(
                    "SELECT id, kind, LENGTH(body) FROM records WHERE bucket = ? "
                    "ORDER BY id LIMIT ?",
                    (bucket, _DROP_CHUNK),
                ).fetchall()
                if not rows:  # the count was off: nothing of the bucket is left
                    self._bucket_bytes.pop(bucket, None)
                    break
                last_id = None
                for record_id, kind, size in rows:
                    if self._bucket_bytes.get(bucket, 0) <= limit:
                        break
                    last_id = record_id
                    count += 1
                    dropped[Kind(kind)] += 1
                    self._bytes -= int(size) + ROW_OVERHEAD
                    self._records -= 1
                    self._leave_buckets([(bucket, int(size))])
                db.execute("DELETE FROM records WHERE bucket = ? AND id <= ?", (bucket, last_id))
            if count:
                total = self._bucket_dropped.get(bucket, 0) + count
                self._bucket_dropped[bucket] = total
                self._set_meta(db, f"dropped_bucket:{bucket}", str(total))
                log.debug("telemetry: %d records of %s dropped at its bound", count, bucket)

    def _leave_buckets(self, records: Iterable[tuple[str, int]]) -> None:
        """Records (bucket, body size) left the records table: their buckets hold less."""
        for bucket, size in records:
            if bucket:
                left = self._bucket_bytes.get(bucket, 0) - size - ROW_OVERHEAD
                if left > 0:
                    self._bucket_bytes[bucket] = left
                else:
                    self._bucket_bytes.pop(bucket, None)

    def _drop_batch(self, db: sqlite3.Connection, dropped: dict[Kind, int]) -> bool:
        row = db.execute(
            "SELECT kind, sequence, records, LENGTH(payload), dropped FROM batches "
            "ORDER BY rowid LIMIT 1"
        ).fetchone()
        if row is None:
            return False
        db.execute("DELETE FROM batches WHERE kind = ? AND sequence = ?", (row[0], row[1]))
        dropped[Kind(row[0])] += int(row[2])
        # the drops this batch was to report are reported by the next one instead
        key = f"dropped_pending:{row[0]}"
        self._set_meta(db, key, str(int(self._meta(db, key, "0")) + int(row[4])))
        self._records -= int(row[2])
        self._bytes -= int(row[3])
        return True

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str, default: str) -> str:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; SQLite errors become :class:`BufferStoreError`, and after a
        rollback the counters are re-read."""
        if self._closed:
            raise BufferStoreError(str(self.path), "closed")
        try:
            with transaction(self._db, on_rollback=self._resync) as db:
                yield db
        except sqlite3.Error as exc:
            raise BufferStoreError(str(self.path), str(exc)) from exc

    def _resync(self) -> None:
        """After a rollback the counters kept in memory are re-read from the database."""
        try:
            self._read_counters()
        except sqlite3.Error as exc:
            log.error("telemetry buffer: cannot re-read its counters: %s", exc)

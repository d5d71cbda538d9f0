"""The agent's events on disk until the bridge confirms them, so that restarting the agent
(or the board) loses none: SQLite in WAL mode, a row per event.

The event queue's stream id and next sequence number are kept beside the events: a restarted
agent sends what it kept under the same numbers, so the bridge's receipts still name them, and
JetStream drops the copies it already holds (by the event's id).

Durability: ``synchronous=FULL``. Events are rare (a workload started, failed, an OS update),
so a synced commit per event costs little, and a commit rolled back by a power cut cannot hand
a sequence number that was already sent to another event.

A journal that cannot be written does not stop the agent: the queue goes on in memory, and
every failed write is logged and counted (:attr:`EventJournal.write_errors`).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flotta.agent.errors import StateStoreError
from flotta.agent.sqlite_file import open_store, transaction
from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import ContractError
from flotta.schemas.wire import DeviceEvent

log = logging.getLogger(__name__)

JOURNAL_FILE = "events/journal.sqlite3"  # under the state directory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (sequence INTEGER PRIMARY KEY, payload BLOB NOT NULL);
"""


class EventJournalError(StateStoreError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"event journal {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SavedEvents:
    stream: str
    next_sequence: int
    events: list[tuple[int, DeviceEvent]] = field(default_factory=list)
    unreadable: int = 0  # rows that no longer decode; removed


class EventJournal:
    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout  # seconds to wait for another writer's lock
        self.write_errors = 0
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return open_store(
                self.path, schema=_SCHEMA, what="event journal", busy_timeout=self.busy_timeout
            )
        except (OSError, sqlite3.Error) as exc:
            raise EventJournalError(self.path, str(exc)) from exc

    @classmethod
    def open(cls, path: Path) -> tuple[EventJournal, SavedEvents]:
        """The journal at ``path`` and what it holds."""
        journal = cls(path)
        try:
            return journal, journal.load()
        except EventJournalError:
            journal.close()
            raise

    def load(self) -> SavedEvents:
        """The stream id (made on first use), the next sequence number and the kept events,
        oldest first. Rows that no longer decode are removed and counted."""
        try:
            with transaction(self._db) as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                stream = meta.get("stream") or secrets.token_hex(8)
                next_sequence = int(meta.get("next_sequence", "0"))
                events: list[tuple[int, DeviceEvent]] = []
                unreadable: list[int] = []
                for sequence, payload in db.execute(
                    "SELECT sequence, payload FROM events ORDER BY sequence"
                ):
                    try:
                        events.append((sequence, decode(DeviceEvent, payload)))
                    except ContractError as exc:
                        log.error(
                            "event %d in %s is unreadable (%s): removed", sequence, self.path, exc
                        )
                        unreadable.append(sequence)
                db.executemany("DELETE FROM events WHERE sequence = ?", [(s,) for s in unreadable])
                if "stream" not in meta:
                    db.execute("INSERT INTO meta VALUES ('stream', ?)", (stream,))
        except (sqlite3.Error, ValueError) as exc:
            raise EventJournalError(self.path, str(exc)) from exc
        if events:
            next_sequence = max(next_sequence, events[-1][0] + 1)
        return SavedEvents(stream, next_sequence, events, len(unreadable))

    def added(self, sequence: int, event: DeviceEvent, next_sequence: int) -> None:
        self._write(
            "keep event",
            [
                ("INSERT OR REPLACE INTO events VALUES (?, ?)", [(sequence, encode(event))]),
                (
                    "INSERT OR REPLACE INTO meta VALUES ('next_sequence', ?)",
                    [(str(next_sequence),)],
                ),
            ],
        )

    def removed(self, sequences: Iterable[int]) -> None:
        rows = [(s,) for s in sequences]
        if rows:
            self._write("forget events", [("DELETE FROM events WHERE sequence = ?", rows)])

    def _write(
        self, what: str, statements: Sequence[tuple[str, Sequence[tuple[object, ...]]]]
    ) -> None:
        try:
            with transaction(self._db) as db:
                for sql, rows in statements:
                    db.executemany(sql, rows)
        except sqlite3.Error as exc:
            self.write_errors += 1
            log.warning("event journal %s: cannot %s: %s", self.path, what, exc)

    def close(self) -> None:
        self._db.close()

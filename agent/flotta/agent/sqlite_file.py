"""The agent's SQLite stores (the telemetry buffer, the event journal), opened and written the
same way.

Opening (:func:`open_store`): WAL, every commit synced (``synchronous=FULL``), the schema
created, an integrity check. A file that is not a database or is malformed is moved aside
(``NAME.corrupt-SECONDS``) and a new one started, so a damaged store never stops the agent;
anything else (locked, unreadable, disk I/O) is raised for the caller to report. Writing:
:func:`transaction`."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

WAL_SIZE_LIMIT = 4 * 1024 * 1024  # bytes the WAL file is truncated to after a checkpoint


def _no_upgrade(db: sqlite3.Connection) -> None:
    pass


def _nothing() -> None:
    pass


def open_store(
    path: Path,
    *,
    schema: str,
    what: str,
    upgrade: Callable[[sqlite3.Connection], None] = _no_upgrade,
    busy_timeout: float = 5.0,
    any_thread: bool = False,
    clock: Callable[[], float] = time.time,
) -> sqlite3.Connection:
    """Raises ``OSError`` or ``sqlite3.Error``. ``upgrade`` brings an older file's tables up to
    ``schema``; ``what`` names the store in the log."""

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(
            path, isolation_level=None, timeout=busy_timeout, check_same_thread=not any_thread
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            db.executescript(schema)
            upgrade(db)
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
        except sqlite3.Error:
            db.close()
            raise
        return db

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return connect()
    except sqlite3.OperationalError:  # locked, unreadable, disk I/O: not corruption
        raise
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        aside = path.with_name(f"{path.name}.corrupt-{int(clock())}")
        log.error("%s %s is unreadable (%s); moved to %s", what, path, exc, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return connect()


@contextmanager
def transaction(
    db: sqlite3.Connection, *, on_rollback: Callable[[], None] = _nothing
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``. On any error, a failed ``COMMIT`` too, the
    transaction is rolled back, ``on_rollback`` is called and the error raised."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        on_rollback()
        raise

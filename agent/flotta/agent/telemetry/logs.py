"""Following workload logs from an injectable source into the staging area."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

from flotta.agent.telemetry.batching import record_body
from flotta.agent.telemetry.staging import Cursor, Staging
from flotta.backoff import Backoff
from flotta.schemas.wire import LogLine
from flotta.schemas.wire.common import KiB
from flotta.schemas.wire.telemetry import LogStream

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 16 * KiB


class LogEntry(Protocol):
    """What a log source yields: the shape of ``flotta.agent.runtime``'s log lines (a time
    of ``None`` means the runtime did not say; the time of reading is used then)."""

    @property
    def container(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def time(self) -> datetime | None: ...
    @property
    def text(self) -> str: ...


LogSource = Callable[[str], AsyncIterator[LogEntry]]


def to_log_line(workload: str, entry: LogEntry, *, now: datetime | None = None) -> LogLine:
    return LogLine(
        workload=workload,
        container=entry.container[:253],
        time=entry.time or now or datetime.now(UTC),
        stream=_stream(entry.stream),
        line=entry.text[:MAX_LINE_CHARS],
    )


def _stream(name: str) -> LogStream:
    if name == "stderr":
        return "stderr"
    if name == "system":
        return "system"
    return "stdout"


class ResumePoint:
    """Where a follower stopped, so a re-opened source (which may replay from the start)
    does not stage the same lines twice: entries older than the last one seen are skipped,
    and at the same instant as many as were already taken. Its :attr:`cursor` is stored
    with the lines it covers, so a restarted agent resumes where the buffer ends."""

    def __init__(self, cursor: Cursor | None = None) -> None:
        self._last: datetime | None = None
        self._taken_at_last = 0
        if cursor is not None:
            try:
                self._last = datetime.fromisoformat(cursor[0])
                self._taken_at_last = max(0, cursor[1])
            except ValueError:
                log.warning("log cursor %r is unreadable; following from the start", cursor)
        self._seen_at_last = 0

    @property
    def cursor(self) -> Cursor | None:
        return None if self._last is None else (self._last.isoformat(), self._taken_at_last)

    def restart(self) -> None:
        self._seen_at_last = 0

    def accept(self, time: datetime | None) -> bool:
        if time is None:
            return True  # nothing to compare with
        if self._last is None or time > self._last:
            self._last, self._taken_at_last, self._seen_at_last = time, 1, 1
            return True
        if time < self._last:
            return False
        self._seen_at_last += 1
        if self._seen_at_last > self._taken_at_last:
            self._taken_at_last = self._seen_at_last
            return True
        return False


async def follow(
    workload: str,
    source: LogSource,
    staging: Staging,
    wake: asyncio.Event,
    *,
    backoff: Backoff,
    cursor: Cursor | None = None,
) -> None:
    """Follow one workload's logs forever from ``cursor``; a source that ends or fails is
    re-opened."""
    resume = ResumePoint(cursor)
    while True:
        resume.restart()
        entries = source(workload)
        try:
            async for entry in entries:
                if not resume.accept(entry.time):
                    continue
                try:
                    body = record_body(to_log_line(workload, entry))
                except ValueError as exc:
                    log.warning("logs of %s: line skipped: %s", workload, exc)
                    continue
                staging.add(body, workload=workload, cursor=resume.cursor)
                if len(staging) * 2 >= staging.max_records:
                    wake.set()
                backoff.reset()
        except Exception as exc:  # a source failing must not stop the others
            log.warning("logs of %s: source failed: %s", workload, exc)
        finally:
            await _close(entries)
        await asyncio.sleep(backoff.next_delay())


async def _close(entries: AsyncIterator[LogEntry]) -> None:
    aclose = getattr(entries, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception as exc:
            log.debug("closing a log source: %s", exc)

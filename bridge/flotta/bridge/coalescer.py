"""Which EdgeDevice status writes to make, and when: the write-storm guard. Pure.

- Per device only the latest state matters: a device is queued once however often it changes,
  and the writer reads its state when the write happens (coalescing).
- Urgent changes (a device going online or offline, a workload changing phase) go before
  other visible changes (an applied version, a condition that follows from it), which go
  before last-seen refreshes; one write per device at a time. After a fleet-wide rollout,
  thousands of applied versions wait their turn while a failure a user must see does not.
- A global token bucket bounds all writes; refreshes have a second, smaller bucket, so a
  fleet that changes nothing costs at most ``refresh_rate`` writes a second.
- A device's last-seen time is due for a refresh only after ``refresh_periods`` heartbeat
  periods (:func:`refresh_due`).
- Ordinary changes wait for the burst they belong to to pass: they are written once no new one
  has come for ``change_settle`` seconds, or once the oldest has waited ``change_hold``. A
  rollout's 10,000 applied versions arrive within seconds; their writes (each one costs the API
  server and every watcher) no longer compete for the CPU with the devices still answering.
  Urgent changes never wait.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime
from typing import Any, Generic, TypeVar

from flotta.rate_limit import TokenBucket

K = TypeVar("K", bound=Hashable)

REFRESH_PERIODS = 6
# Status writes a second for the whole bridge (urgent changes first): a rollout to 10,000 devices
# shows in their statuses within ~200 s, and the API server sees at most this many writes from
# the bridge, each of which also costs every watcher of EdgeDevices. At 100/s the writes took a
# quarter of a 2-core machine and slowed the fan-out they follow (benchmarks/results/fleet.md).
DEFAULT_WRITE_RATE = 50.0
DEFAULT_WRITE_BURST = 100.0
DEFAULT_CHANGE_SETTLE = 2.0  # seconds without a new ordinary change before they are written
DEFAULT_CHANGE_HOLD = 10.0  # seconds an ordinary change waits at most for that


class WriteKind(enum.Enum):
    URGENT = "urgent"
    CHANGE = "change"
    REFRESH = "refresh"


def refresh_due(
    written_seen: datetime | None, now: datetime, period: float, periods: float = REFRESH_PERIODS
) -> bool:
    """Whether the last-seen time in the API is old enough to be refreshed."""
    if written_seen is None:
        return True
    return (now - written_seen).total_seconds() >= periods * period


class WriteCoalescer(Generic[K]):
    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        refresh_rate: float,
        now: float,
        refresh_capacity: int = 100_000,
        change_settle: float = 0.0,
        change_hold: float = DEFAULT_CHANGE_HOLD,
    ) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._refresh_bucket = TokenBucket(min(refresh_rate, rate), 1, now)
        self._change_settle = change_settle
        self._change_hold = change_hold
        self._last_new_change = float("-inf")
        self._urgent: OrderedDict[K, None] = OrderedDict()
        self._changed: OrderedDict[K, float] = OrderedDict()  # key -> when it was queued
        self._refresh: OrderedDict[K, None] = OrderedDict()
        self._in_flight: set[K] = set()
        self.refresh_capacity = refresh_capacity
        self.dropped_refreshes = 0

    @property
    def pending(self) -> int:
        return len(self._urgent) + len(self._changed) + len(self._refresh)

    @property
    def pending_changes(self) -> int:
        """Queued visible changes (urgent or not), last-seen refreshes left out."""
        return len(self._urgent) + len(self._changed)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def changed(self, key: K, *, urgent: bool = False, now: float = 0.0) -> None:
        """The device has a visible change to write (``urgent``: ahead of the others, at
        once; ordinary ones wait for their burst to settle, timed from ``now``)."""
        self._refresh.pop(key, None)
        if urgent:
            self._changed.pop(key, None)
            self._urgent[key] = None
        elif key not in self._urgent and key not in self._changed:
            self._changed[key] = now
            self._last_new_change = max(self._last_new_change, now)

    def _changes_due_in(self, now: float) -> float:
        """Seconds until ordinary changes may be written (0: now)."""
        if not self._changed:
            return 0.0
        oldest = next(iter(self._changed.values()))
        settled = self._last_new_change + self._change_settle - now
        held = oldest + self._change_hold - now
        return max(0.0, min(settled, held))

    def refresh(self, key: K) -> None:
        """The device's last-seen time is due (ignored if a change is queued anyway)."""
        if key in self._urgent or key in self._changed or key in self._refresh:
            return
        if len(self._refresh) >= self.refresh_capacity:
            self.dropped_refreshes += 1
            return
        self._refresh[key] = None

    def forget(self, key: K) -> None:
        self._urgent.pop(key, None)
        self._changed.pop(key, None)
        self._refresh.pop(key, None)

    def take(
        self, now: float, limit: int, refresh_limit: int | None = None
    ) -> list[tuple[K, WriteKind]]:
        """Up to ``limit`` writes allowed now, of which at most ``refresh_limit`` refreshes;
        each must be ended with :meth:`finished`."""
        taken: list[tuple[K, WriteKind]] = []
        refreshes = limit if refresh_limit is None else min(limit, refresh_limit)
        queues: tuple[tuple[OrderedDict[K, Any], WriteKind], ...] = (
            (self._urgent, WriteKind.URGENT),
            (self._changed, WriteKind.CHANGE),
            (self._refresh, WriteKind.REFRESH),
        )
        for queue, kind in queues:
            if kind is WriteKind.CHANGE and self._changes_due_in(now) > 0:
                continue
            skipped: list[tuple[K, Any]] = []
            cap = len(taken) + refreshes if kind is WriteKind.REFRESH else limit
            while queue and len(taken) < min(limit, cap):
                key = next(iter(queue))
                if key in self._in_flight:
                    skipped.append((key, queue.pop(key)))
                    continue
                if not self._bucket.available(now):
                    break
                if kind is WriteKind.REFRESH and not self._refresh_bucket.try_take(now):
                    break
                self._bucket.try_take(now)
                queue.pop(key)
                self._in_flight.add(key)
                taken.append((key, kind))
            for key, value in reversed(skipped):
                queue[key] = value
                queue.move_to_end(key, last=False)
        return taken

    def finished(self, key: K) -> None:
        self._in_flight.discard(key)

    def wait_time(self, now: float) -> float | None:
        """Seconds until a queued write may be taken; None when nothing is queued."""
        if any(key not in self._in_flight for key in self._urgent):
            return self._bucket.wait_time(now)
        if any(key not in self._in_flight for key in self._changed):
            return max(self._bucket.wait_time(now), self._changes_due_in(now))
        if any(key not in self._in_flight for key in self._refresh):
            return max(self._bucket.wait_time(now), self._refresh_bucket.wait_time(now))
        return None

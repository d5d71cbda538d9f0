"""Missed heartbeats: a device that has not reported for ``missed_periods`` heartbeat periods
is offline. Pure: time is an argument (monotonic seconds).

Silence only counts while the bridge could have heard: while its own MQTT session is down
(:meth:`LivenessTracker.pause`) no device is declared offline, and once it is back
(:meth:`LivenessTracker.resume`) every deadline moves by the length of the outage. Otherwise a
broker restart longer than three heartbeat periods would mark the whole fleet offline, and
write every EdgeDevice twice, while the devices were only waiting to reconnect."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

MISSED_PERIODS = 3


class LivenessTracker(Generic[K]):
    """Deadlines per device; :meth:`expired` reports each silent device once."""

    def __init__(self, missed_periods: float = MISSED_PERIODS) -> None:
        self.missed_periods = missed_periods
        self._deadlines: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._counter = 0
        self._paused_at: float | None = None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self, now: float) -> None:
        """The bridge cannot hear devices from now on (its MQTT session is down)."""
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> None:
        """The bridge hears devices again: deadlines move by the time it could not."""
        if self._paused_at is None:
            return
        outage = max(0.0, now - self._paused_at)
        self._paused_at = None
        if outage == 0.0:
            return
        self._deadlines = {key: deadline + outage for key, deadline in self._deadlines.items()}
        self._heap = [
            (deadline, n, key) for n, (key, deadline) in enumerate(self._deadlines.items())
        ]
        heapq.heapify(self._heap)
        self._counter = len(self._heap)

    def __len__(self) -> int:
        return len(self._deadlines)

    def heard(self, key: K, period: float, now: float) -> None:
        """The device reported; it is expected again within ``missed_periods`` periods."""
        self.expect_by(key, now + self.missed_periods * period)

    def expect_by(self, key: K, deadline: float) -> None:
        """The device is expected again by ``deadline`` (monotonic seconds), whatever its
        period."""
        self._deadlines[key] = deadline
        self._counter += 1
        heapq.heappush(self._heap, (deadline, self._counter, key))
        if len(self._heap) > 4 * len(self._deadlines) + 64:
            self._compact()

    def forget(self, key: K) -> None:
        """Stop watching a device (it went offline by itself, or was deleted)."""
        self._deadlines.pop(key, None)

    def deadline(self, key: K) -> float | None:
        return self._deadlines.get(key)

    def expired(self, now: float) -> list[K]:
        """Devices whose deadline passed; they are forgotten until heard again. None while
        paused."""
        silent: list[K] = []
        if self._paused_at is not None:
            return silent
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            if self._deadlines.get(key) == deadline:
                del self._deadlines[key]
                silent.append(key)
        return silent

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._deadlines.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)

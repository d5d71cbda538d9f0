"""Missed heartbeats: a device that has not reported for ``missed_periods`` heartbeat periods
is offline. Pure: time is an argument (monotonic seconds)."""

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

    def __len__(self) -> int:
        return len(self._deadlines)

    def heard(self, key: K, period: float, now: float) -> None:
        """The device reported; it is expected again within ``missed_periods`` periods."""
        deadline = now + self.missed_periods * period
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
        """Devices whose deadline passed; they are forgotten until heard again."""
        silent = []
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            if self._deadlines.get(key) == deadline:
                del self._deadlines[key]
                silent.append(key)
        return silent

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._deadlines.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)

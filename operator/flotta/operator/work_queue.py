"""A level-triggered work queue: each key at most once, in first-added order.

It is bounded by construction: it never holds more entries than there are distinct keys
(devices, workloads), however often they change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._keys: dict[K, None] = {}
        self._ready = asyncio.Event()

    def add(self, key: K) -> None:
        self._keys[key] = None
        self._ready.set()

    def add_all(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._keys[key] = None
        if self._keys:
            self._ready.set()

    async def get_batch(self, limit: int) -> list[K]:
        """Wait for work, then take up to ``limit`` keys."""
        while not self._keys:
            self._ready.clear()
            await self._ready.wait()
        batch = []
        for key in self._keys:
            batch.append(key)
            if len(batch) >= limit:
                break
        for key in batch:
            del self._keys[key]
        return batch

    def __len__(self) -> int:
        return len(self._keys)

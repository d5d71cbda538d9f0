"""Named background tasks that log their failure and are always cancelled and awaited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Tasks by key: starting a key that runs replaces nothing (stop it first)."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def keys(self) -> set[Hashable]:
        return set(self._tasks)

    def start(self, key: Hashable, coroutine: Coroutine[Any, Any, None]) -> None:
        if key in self._tasks:
            coroutine.close()
            raise RuntimeError(f"{self._owner}: task {key!r} already runs")
        task = asyncio.create_task(coroutine, name=f"{self._owner}:{key}")
        task.add_done_callback(self._report)
        self._tasks[key] = task

    async def stop(self, key: Hashable) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _report(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("%s failed: %s", task.get_name(), error, exc_info=error)
        else:
            log.warning("%s ended although it should run until cancelled", task.get_name())

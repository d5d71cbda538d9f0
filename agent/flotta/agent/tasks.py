"""Named background tasks: a failure is logged (and handed to ``on_failure``), a task meant to
run until cancelled that returns is reported, and stopping cancels and waits for them."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Tasks by key; starting a key that runs is an error (stop it first)."""

    def __init__(
        self, owner: str, on_failure: Callable[[str, BaseException], None] | None = None
    ) -> None:
        self._owner = owner
        self._on_failure = on_failure
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def keys(self) -> set[Hashable]:
        return set(self._tasks)

    def start(self, key: Hashable, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if key in self._tasks and not self._tasks[key].done():
            coroutine.close()
            raise RuntimeError(f"{self._owner}: task {key!r} already runs")
        task = asyncio.create_task(coroutine, name=f"{self._owner}:{key}")
        task.add_done_callback(functools.partial(self._report, key))
        self._tasks[key] = task
        return task

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

    def _report(self, key: Hashable, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            log.warning("%s ended although it should run until cancelled", task.get_name())
            return
        log.error("%s failed: %s", task.get_name(), error, exc_info=error)
        if self._on_failure is not None:
            self._on_failure(str(key), error)

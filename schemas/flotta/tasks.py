"""Named background tasks, guarded: the one helper the operator, the bridge and the device
agent run their loops with.

* A task that raises is logged (with its traceback) and handed to ``on_failure``, which is
  how each process turns a dead loop into what its supervisor sees: the operator's ``wait``
  raises, the bridge reports an unhealthy ``/healthz`` and ends, the agent exits with 1.
* A task that returns although it should run until stopped is logged; with
  ``until_stopped=True`` it is a failure too (:class:`TaskEndedError`).
* Stopping (one key, or all) cancels and awaits; a task that is being stopped, or that ends
  after :meth:`TaskSet.quiet`, is never reported.

Standard library only: the device agent imports it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

OnFailure = Callable[[str, BaseException], None]


class TaskEndedError(RuntimeError):
    """A task that should run until stopped returned."""


class TaskSet:
    """Tasks by key; starting a key that runs is an error (stop it first). A task's name is
    ``owner:key``."""

    def __init__(
        self, owner: str, on_failure: OnFailure | None = None, *, until_stopped: bool = False
    ) -> None:
        self._owner = owner
        self._on_failure = on_failure
        self._until_stopped = until_stopped
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}
        self._quiet = False

    def keys(self) -> set[Hashable]:
        return set(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[None]]:
        """The tasks started and not stopped (a task that died stays until stopped)."""
        return iter(list(self._tasks.values()))

    def start(self, key: Hashable, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if key in self._tasks and not self._tasks[key].done():
            coroutine.close()
            raise RuntimeError(f"{self._owner}: task {key!r} already runs")
        task = asyncio.get_running_loop().create_task(coroutine, name=f"{self._owner}:{key}")
        task.add_done_callback(functools.partial(self._report, key))
        self._tasks[key] = task
        return task

    def quiet(self) -> None:
        """From now until :meth:`stop_all` returns, no task's end is reported: a shutdown that
        first makes loops return (closing what they read) calls this before it starts."""
        self._quiet = True

    async def stop(self, key: Hashable) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self, grace: float | None = None) -> set[asyncio.Task[None]]:
        """Cancel every task and wait for them (at most ``grace`` seconds); the tasks that
        did not end in time, each logged. A task of the set that calls this is left to end by
        itself (cancelling it would abort its own shutdown)."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks.values() if task is not current]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        stuck: set[asyncio.Task[None]] = set()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=grace)
            for task in stuck:
                logger.error("task %s did not stop", task.get_name())
        self._quiet = False
        return stuck

    def _report(self, key: Hashable, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._quiet or self._tasks.get(key) is not task:
            return
        error = task.exception()
        if error is None:
            if not self._until_stopped:
                logger.warning("%s ended although it should run until cancelled", task.get_name())
                return
            error = TaskEndedError(f"{task.get_name()} returned; it should run until stopped")
            logger.error("%s", error)
        else:
            logger.error("%s failed: %s", task.get_name(), error, exc_info=error)
        if self._on_failure is not None:
            self._on_failure(str(key), error)


class FirstFailure:
    """The first task of a process that failed or returned, as a :class:`TaskSet`'s
    ``on_failure``: what a daemon's health reports and what ends its run."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._happened = asyncio.Event()

    def __call__(self, _name: str, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            self._happened.set()

    async def wait(self) -> BaseException:
        await self._happened.wait()
        assert self.error is not None
        return self.error


async def wait_first(*awaitables: Awaitable[Any]) -> list[asyncio.Future[Any]]:
    """Wait until the first of ``awaitables`` ends (a stop event, a failure), then cancel and
    await the others: the one wait a process runs until it is stopped or a loop dies. Returns
    them as futures in the order given; each is done, the ones cut short cancelled."""
    futures: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
    return futures

"""The guarded task helper (flotta.tasks): a failing loop is reported, stopping waits for every
task."""

from __future__ import annotations

import asyncio

import pytest

from flotta.tasks import FirstFailure, TaskEndedError, TaskSet, wait_first


async def test_failure_is_reported_and_stop_all_cancels_the_rest() -> None:
    failures: list[tuple[str, str]] = []
    tasks = TaskSet("test", lambda name, error: failures.append((name, str(error))))

    async def broken() -> None:
        raise RuntimeError("boom")

    forever = tasks.start("forever", asyncio.Event().wait())  # type: ignore[arg-type]
    tasks.start("broken", broken())
    await asyncio.sleep(0.05)
    assert failures == [("broken", "boom")]
    assert sorted(task.get_name() for task in tasks if task.done()) == ["test:broken"]
    await tasks.stop_all()
    assert forever.cancelled()


async def test_a_key_that_runs_cannot_be_started_twice() -> None:
    tasks = TaskSet("test")
    tasks.start("loop", asyncio.Event().wait())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="already runs"):
        tasks.start("loop", asyncio.Event().wait())  # type: ignore[arg-type]
    assert tasks.keys() == {"loop"}
    await tasks.stop_all()
    assert tasks.keys() == set()


async def test_a_return_is_a_failure_when_tasks_must_run_until_stopped() -> None:
    failures: list[tuple[str, BaseException]] = []
    tasks = TaskSet("test", lambda name, error: failures.append((name, error)), until_stopped=True)

    async def returns() -> None:
        return None

    tasks.start("short", returns())
    await asyncio.sleep(0.05)
    assert [name for name, _ in failures] == ["short"]
    assert isinstance(failures[0][1], TaskEndedError)
    await tasks.stop_all()


async def test_ends_while_stopping_or_quiet_are_not_reported() -> None:
    failures: list[str] = []
    tasks = TaskSet("test", lambda name, error: failures.append(name), until_stopped=True)
    release = asyncio.Event()

    async def stops_when_released() -> None:
        await release.wait()

    async def raises_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("while stopping")

    tasks.start("released", stops_when_released())
    tasks.start("stubborn", raises_when_cancelled())
    await asyncio.sleep(0)
    tasks.quiet()
    release.set()
    await asyncio.sleep(0.05)
    assert await tasks.stop_all(grace=5.0) == set()
    assert failures == []


async def test_a_task_may_stop_its_own_set() -> None:
    tasks = TaskSet("test")
    finished = asyncio.Event()
    other_cancelled = asyncio.Event()

    async def other() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            other_cancelled.set()

    async def shuts_down() -> None:
        await tasks.stop_all()  # as a client's supervisor closing the client does
        finished.set()

    tasks.start("other", other())
    await asyncio.sleep(0)
    stopper = tasks.start("stopper", shuts_down())
    async with asyncio.timeout(5):
        await stopper
    assert finished.is_set()
    assert other_cancelled.is_set()
    assert len(tasks) == 0


async def test_wait_first_ends_with_the_first_and_cancels_the_rest() -> None:
    stop = asyncio.Event()
    cut_short = asyncio.Event()

    async def runs_until_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cut_short.set()

    asyncio.get_running_loop().call_later(0.01, stop.set)
    async with asyncio.timeout(5):
        stopped, other = await wait_first(stop.wait(), runs_until_cancelled())
    assert stopped.result() is True
    assert other.cancelled()
    assert cut_short.is_set()


async def test_wait_first_hands_back_a_failure_and_cancels_when_cancelled() -> None:
    async def fails() -> None:
        raise ValueError("loop died")

    failed, waiting = await wait_first(fails(), asyncio.Event().wait())
    assert isinstance(failed.exception(), ValueError)
    assert waiting.cancelled()

    never = asyncio.ensure_future(asyncio.Event().wait())
    waiter = asyncio.ensure_future(wait_first(never))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled()
    assert never.cancelled()


async def test_first_failure_keeps_the_first_and_wakes_its_waiter() -> None:
    failure = FirstFailure()
    tasks = TaskSet("test", failure, until_stopped=True)

    async def fails(message: str) -> None:
        raise ValueError(message)

    waiter = asyncio.ensure_future(failure.wait())
    tasks.start("first", fails("first"))
    async with asyncio.timeout(5):
        error = await waiter
    tasks.start("second", fails("second"))
    await asyncio.sleep(0.01)
    assert str(error) == "first"
    assert failure.error is error
    await tasks.stop_all()

"""The agent's task helper: a failing loop is reported, stopping waits for every task."""

from __future__ import annotations

import asyncio

import pytest

from flotta.agent.tasks import TaskSet


async def test_failure_is_reported_and_stop_all_cancels_the_rest() -> None:
    failures: list[tuple[str, str]] = []
    tasks = TaskSet("test", lambda name, error: failures.append((name, str(error))))

    async def broken() -> None:
        raise RuntimeError("boom")

    forever = tasks.start("forever", asyncio.Event().wait())  # type: ignore[arg-type]
    tasks.start("broken", broken())
    await asyncio.sleep(0.05)
    assert failures == [("broken", "boom")]
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

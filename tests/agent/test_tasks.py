"""The agent's task helper: a failing loop is reported, stopping waits for every task."""

from __future__ import annotations

import asyncio

from flotta.agent.tasks import Tasks


async def test_failure_is_reported_and_stop_all_cancels_the_rest() -> None:
    failures: list[tuple[str, str]] = []
    tasks = Tasks(lambda name, error: failures.append((name, str(error))))

    async def broken() -> None:
        raise RuntimeError("boom")

    forever = tasks.start("forever", asyncio.Event().wait())  # type: ignore[arg-type]
    tasks.start("broken", broken())
    await asyncio.sleep(0.05)
    assert failures == [("broken", "boom")]
    await tasks.stop_all()
    assert forever.cancelled()

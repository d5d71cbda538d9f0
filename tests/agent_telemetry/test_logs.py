import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flotta.agent.telemetry.logs import ResumePoint, follow, to_log_line
from flotta.agent.telemetry.staging import Staging
from flotta.backoff import Backoff, BackoffPolicy
from flotta.schemas.codec import decode_fragment
from flotta.schemas.wire import LogLine
from tests.agent_telemetry.log_sources import SourceLine, tail_source, write_lines
from tests.agent_telemetry.waiting import wait_until

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_resume_point_skips_what_was_taken_even_at_the_same_instant() -> None:
    resume = ResumePoint()
    first_pass = [T0, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1)]
    assert [resume.accept(t) for t in first_pass] == [True] * 4
    resume.restart()  # the source replays from the start, with one more line
    replay = [*first_pass, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    assert [resume.accept(t) for t in replay] == [False, False, False, False, True, True]


def test_log_lines_are_cut_to_the_wire_limits() -> None:
    line = to_log_line("app", SourceLine("app", "c" * 300, "odd", T0, "z" * 20000))
    assert line.time == T0
    undated = to_log_line("app", SourceLine("app", "c", "stderr", None, "x"), now=T0)
    assert (undated.time, undated.stream) == (T0, "stderr")
    assert (line.workload, len(line.container), len(line.line), line.stream) == (
        "app",
        253,
        16384,
        "stdout",
    )


async def test_following_a_real_process_survives_a_source_failure(tmp_path: Path) -> None:
    processes: list[asyncio.subprocess.Process] = []
    staging = Staging(10_000)
    await write_lines(tmp_path / "app.log", 100)
    task = asyncio.create_task(
        follow(
            "app",
            tail_source(tmp_path, processes),
            staging,
            asyncio.Event(),
            backoff=Backoff(BackoffPolicy(base=0.05, cap=0.1, jitter=0.5)),
        )
    )
    try:
        await wait_until(lambda: len(staging) >= 100)
        processes[0].kill()  # the source dies; the follower opens it again
        await write_lines(tmp_path / "app.log", 50, prefix="more")
        await wait_until(lambda: len(staging) >= 150 and len(processes) >= 2)
        await asyncio.sleep(0.3)  # anything replayed twice would show up now
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    staged = staging.take()
    lines = [decode_fragment(LogLine, r).line for r in staged.records]
    assert lines == [f"line-{i}" for i in range(100)] + [f"more-{i}" for i in range(50)]
    assert staged.dropped == 0
    last = decode_fragment(LogLine, staged.records[-1]).time
    assert staged.cursors == {"app": (last.isoformat(), 1)}
    assert all(p.returncode is not None for p in processes)


def test_a_full_staging_area_counts_drops_and_still_moves_the_cursor() -> None:
    staging = Staging(2)
    added = [staging.add(f"{i}".encode(), workload="w", cursor=("t", i)) for i in range(3)]
    assert added == [True, True, False]
    staged = staging.take()
    assert (staged.records, staged.dropped, staged.cursors) == ([b"0", b"1"], 1, {"w": ("t", 2)})
    assert staging.take().records == []


def test_a_resume_point_starts_from_a_stored_cursor() -> None:
    resume = ResumePoint((T0.isoformat(), 2))
    offered = [T0 - timedelta(seconds=1), T0, T0, T0, T0 + timedelta(seconds=1)]
    assert [resume.accept(t) for t in offered] == [False, False, False, True, True]
    assert resume.cursor == ((T0 + timedelta(seconds=1)).isoformat(), 1)
    assert ResumePoint(("garbage", 1)).cursor is None

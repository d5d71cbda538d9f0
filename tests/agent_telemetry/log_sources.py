"""Real log sources for tests: ``tail -F`` of a file that a real process writes, each line
``<RFC 3339 time> <text>`` (the shape of ``podman logs --timestamps``); like Podman, a
re-opened source replays from the first line."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flotta.agent.telemetry.logs import LogSource


@dataclass(frozen=True, slots=True)
class SourceLine:
    """The shape of flotta.agent.runtime's log lines."""

    workload: str
    container: str
    stream: str
    time: datetime | None
    text: str


def tail_source(folder: Path, processes: list[asyncio.subprocess.Process]) -> LogSource:
    """Follows ``folder/<workload>.log``; started processes are appended to ``processes``."""

    async def source(workload: str) -> AsyncIterator[SourceLine]:
        process = await asyncio.create_subprocess_exec(
            "tail",
            "-n",
            "+1",
            "-F",
            f"--pid={os.getpid()}",  # ends with this process, even when it is killed
            str(folder / f"{workload}.log"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        processes.append(process)
        assert process.stdout is not None
        try:
            async for raw in process.stdout:
                stamp, _, text = raw.decode().rstrip("\n").partition(" ")
                yield SourceLine(workload, "main", "stdout", datetime.fromisoformat(stamp), text)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()

    return source


async def write_lines(path: Path, count: int, prefix: str = "line") -> None:
    """A real producer process appending ``count`` timestamped lines."""
    script = (
        'i=0; while [ "$i" -lt "$2" ]; do '
        'echo "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) $3-$i" >> "$1"; i=$((i+1)); done'
    )
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", script, "writer", str(path), str(count), prefix
    )
    assert await process.wait() == 0

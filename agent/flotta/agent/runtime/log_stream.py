"""Following the logs of a workload's containers: one reader task per container, lines
merged through a bounded queue (a slow consumer slows the readers, nothing is dropped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from flotta.agent.runtime.errors import PodmanApiError, WorkloadNotFoundError, WorkloadRuntimeError
from flotta.agent.runtime.libpod import LibpodClient, quote
from flotta.agent.runtime.log_frames import FrameDecoder, LineSplitter, LogLine, Stream, parse_line

Item = LogLine | BaseException | None


@dataclass(frozen=True, slots=True)
class ContainerRef:
    workload: str
    name: str
    container_id: str


async def follow_logs(
    client: LibpodClient,
    containers: Sequence[ContainerRef],
    since: datetime | None,
    *,
    follow: bool,
    queue_size: int,
) -> AsyncGenerator[LogLine, None]:
    """Lines of ``containers`` as they come; ends when every stream has ended."""
    queue: asyncio.Queue[Item] = asyncio.Queue(queue_size)
    tasks = [
        asyncio.create_task(
            _follow(client, container, since, follow, queue),
            name=f"logs {container.workload}/{container.name}",
        )
        for container in containers
    ]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _follow(
    client: LibpodClient,
    container: ContainerRef,
    since: datetime | None,
    follow: bool,
    queue: asyncio.Queue[Item],
) -> None:
    try:
        await _container_lines(client, container, since, follow, queue)
    except WorkloadNotFoundError:
        pass  # removed meanwhile: its stream simply ends
    except (WorkloadRuntimeError, ValueError) as error:
        await queue.put(error)  # the reader raises it and cancels the other streams
        return
    # Not in `finally`: a cancelled reader must not wait for room in a queue nobody reads.
    await queue.put(None)


async def _container_lines(
    client: LibpodClient,
    container: ContainerRef,
    since: datetime | None,
    follow: bool,
    queue: asyncio.Queue[Item],
) -> None:
    path = f"/containers/{quote(container.container_id)}"
    inspect = await client.call("inspecting container", "GET", f"{path}/json")
    tty = bool((inspect.get("Config") or {}).get("Tty"))
    query = {"follow": str(follow).lower(), "stdout": "true", "stderr": "true"}
    query["timestamps"] = "true"
    if since is not None:
        query["since"] = since.astimezone(UTC).isoformat()
    async with client.stream("GET", f"{path}/logs", query=query) as (status, _, chunks):
        if status == 404:
            return
        if status != 200:
            where = f"{container.workload}/{container.name}"
            raise PodmanApiError(f"reading logs of {where}", status, "")
        decoder = FrameDecoder(multiplexed=not tty)
        splitters: dict[Stream, LineSplitter] = {}

        def line(stream: Stream, raw: bytes) -> LogLine:
            return parse_line(container.workload, container.name, stream, raw, timestamps=True)

        async for chunk in chunks:
            for stream, payload in decoder.feed(chunk):
                splitter = splitters.setdefault(stream, LineSplitter())
                for raw in splitter.feed(payload):
                    await queue.put(line(stream, raw))
        for stream, splitter in splitters.items():
            for raw in splitter.flush():
                await queue.put(line(stream, raw))

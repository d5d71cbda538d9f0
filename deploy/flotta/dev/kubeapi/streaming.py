"""Writing one watch to its HTTP response: initial events, batches, bookmarks, the end."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from flotta.dev.kubeapi import tables
from flotta.dev.kubeapi.api import WatchStart
from flotta.dev.kubeapi.errors import GoneError
from flotta.dev.kubeapi.resources import ResourceType
from flotta.dev.kubeapi.watching import WatchEvent, error_line

logger = logging.getLogger(__name__)

Encoder = Callable[[str, WatchEvent], bytes]


@dataclass(frozen=True)
class WatchOptions:
    as_table: bool
    include_object: str
    bookmarks: bool
    timeout: float  # seconds; 0 for none
    bookmark_interval: float
    batch: int


def encoder(resource: ResourceType, as_table: bool, include_object: str) -> Encoder:
    """Event lines as JSON objects, or as one-row Tables for ``kubectl get -w``."""
    if not as_table:
        return lambda kind, event: event.line(kind)

    def encode(kind: str, event: WatchEvent) -> bytes:
        body = tables.table(
            resource,
            [event.entry.load()],
            resource_version=str(event.resource_version),
            include_object=include_object,
        )
        return json.dumps({"type": kind, "object": body}, separators=(",", ":")).encode() + b"\n"

    return encode


def bookmark_line(resource: ResourceType, resource_version: int) -> bytes:
    body = {
        "type": "BOOKMARK",
        "object": {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(resource_version)},
        },
    }
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


async def stream(
    request: web.Request,
    response: web.StreamResponse,
    resource: ResourceType,
    start: WatchStart,
    options: WatchOptions,
    current_version: Callable[[], int],
) -> None:
    """Send events until the timeout, the client leaving, or the watcher falling behind."""
    watcher = start.watcher
    encode = encoder(resource, options.as_table, options.include_object)
    await response.prepare(request)
    if start.initial:
        await response.write(b"".join(encode(kind, event) for kind, event in start.initial))
    deadline = time.monotonic() + options.timeout if options.timeout > 0 else None
    next_bookmark = time.monotonic() + options.bookmark_interval
    while True:
        if watcher.expired.is_set():
            gone = GoneError("too old resource version: the watcher fell behind")
            await response.write(error_line(gone.status()))
            return
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return
        if request.transport is None or request.transport.is_closing():
            return
        wait = min(
            1.0,
            next_bookmark - now if options.bookmarks else 1.0,
            (deadline - now) if deadline else 1.0,
        )
        try:
            first = await asyncio.wait_for(watcher.queue.get(), max(wait, 0.001))
        except TimeoutError:
            if options.bookmarks and time.monotonic() >= next_bookmark:
                # the queue is empty: every event up to the current version was sent
                await response.write(bookmark_line(resource, current_version()))
                next_bookmark = time.monotonic() + options.bookmark_interval
            continue
        batch = [first]
        while len(batch) < options.batch and not watcher.queue.empty():
            batch.append(watcher.queue.get_nowait())
        await response.write(b"".join(encode(kind, event) for kind, event in batch))

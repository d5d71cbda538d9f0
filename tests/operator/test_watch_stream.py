"""Parsing of watch streams: events split across chunks, ERROR events (410 Gone)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from flotta.operator.watching import WatchedKind, Watcher, WatchEvent, _lines


class Chunks:
    """A response body delivered in the given chunks (the shape urllib3 streams)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks


def test_lines_survive_chunk_boundaries() -> None:
    first = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "a"}}}).encode()
    second = json.dumps({"type": "DELETED", "object": {"metadata": {"name": "b"}}}).encode()
    body = first + b"\n" + second + b"\n"
    chunks = Chunks(body[:7], body[7:30], body[30:], b"\n")
    assert [json.loads(line)["type"] for line in _lines(chunks)] == ["ADDED", "DELETED"]


def test_error_event_raises_gone_and_events_carry_the_resource_version() -> None:
    loop = asyncio.new_event_loop()
    try:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue(10)
        watcher = Watcher(WatchedKind("EdgeDevice", lambda **_: None), queue, loop)
        watcher._put = lambda event: queue.put_nowait(event)  # type: ignore[method-assign]
        watcher._handle({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "41"}}})
        assert watcher.resource_version == "41"
        assert queue.empty()
        watcher._handle(
            {"type": "MODIFIED", "object": {"metadata": {"name": "d1", "resourceVersion": "42"}}}
        )
        event = queue.get_nowait()
        assert (event.type, event.obj["kind"], watcher.resource_version) == (
            "MODIFIED",
            "EdgeDevice",
            "42",
        )
        with pytest.raises(ApiException) as raised:
            watcher._handle(
                {
                    "type": "ERROR",
                    "object": {"code": 410, "reason": "Expired", "message": "too old"},
                }
            )
        assert raised.value.status == 410
    finally:
        loop.close()

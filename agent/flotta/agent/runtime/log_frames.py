"""Podman's container log stream as lines. Pure.

Without a TTY, Podman multiplexes stdout and stderr: each frame is an 8-byte header (stream
id 1 or 2, three zero bytes, a big-endian 32-bit length) and that many bytes of payload.
With a TTY the stream is raw bytes. With ``timestamps=true`` each line starts with an
RFC 3339 time and a space.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Stream = Literal["stdout", "stderr"]
HEADER = struct.Struct(">BxxxI")
STREAMS: dict[int, Stream] = {0: "stdout", 1: "stdout", 2: "stderr"}
MAX_LINE = 64 * 1024


class LogFrameError(ValueError):
    """The stream is not Podman's log framing."""


@dataclass(frozen=True, slots=True)
class LogLine:
    workload: str
    container: str
    stream: Stream
    time: datetime | None
    text: str


class FrameDecoder:
    """Feed raw bytes, get (stream, payload) frames; partial frames wait for more bytes."""

    def __init__(self, *, multiplexed: bool, max_frame: int = 1024 * 1024) -> None:
        self.multiplexed = multiplexed
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[Stream, bytes]]:
        if not self.multiplexed:
            if data:
                yield "stdout", data
            return
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            stream_id, size = HEADER.unpack_from(self._buffer)
            if stream_id not in STREAMS:
                raise LogFrameError(f"unknown stream id {stream_id} in a log frame header")
            if size > self.max_frame:
                raise LogFrameError(f"log frame of {size} bytes is over {self.max_frame}")
            end = HEADER.size + size
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            yield STREAMS[stream_id], payload


class LineSplitter:
    """Bytes of one stream into lines; a line longer than ``max_line`` is cut."""

    def __init__(self, *, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._pending = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._pending += data
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            line = bytes(self._pending[:end])
            del self._pending[: end + 1]
            yield line
        while len(self._pending) > self.max_line:
            yield bytes(self._pending[: self.max_line])
            del self._pending[: self.max_line]

    def flush(self) -> Iterator[bytes]:
        if self._pending:
            yield bytes(self._pending)
            self._pending.clear()


def parse_line(
    workload: str, container: str, stream: Stream, raw: bytes, *, timestamps: bool
) -> LogLine:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    time = None
    if timestamps:
        stamp, separator, rest = text.partition(" ")
        try:
            time = datetime.fromisoformat(stamp)
        except ValueError:
            time = None
        else:
            text = rest if separator else ""
    return LogLine(workload, container, stream, time, text)

"""Podman's multiplexed log stream, decoded. Pure."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from flotta.agent.runtime.log_frames import FrameDecoder, LineSplitter, LogFrameError, parse_line


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_frames_split_across_reads_are_reassembled() -> None:
    raw = frame(1, b"out line\n") + frame(2, b"err line\n")
    decoder = FrameDecoder(multiplexed=True)
    frames: list[tuple[str, bytes]] = []
    for index in range(0, len(raw), 5):
        frames.extend(decoder.feed(raw[index : index + 5]))
    assert frames == [("stdout", b"out line\n"), ("stderr", b"err line\n")]


def test_raw_tty_stream_is_stdout() -> None:
    assert list(FrameDecoder(multiplexed=False).feed(b"abc")) == [("stdout", b"abc")]


@pytest.mark.parametrize("bad", [frame(7, b"x"), struct.pack(">BxxxI", 1, 10**9)])
def test_garbage_is_a_frame_error(bad: bytes) -> None:
    with pytest.raises(LogFrameError):
        list(FrameDecoder(multiplexed=True, max_frame=1024).feed(bad))


def test_lines_are_split_and_long_lines_cut() -> None:
    splitter = LineSplitter(max_line=4)
    assert list(splitter.feed(b"ab\ncd")) == [b"ab"]
    assert list(splitter.feed(b"efghij")) == [b"cdef"]
    assert list(splitter.feed(b"k")) == [b"ghij"]
    assert list(splitter.flush()) == [b"k"]


def test_timestamped_line() -> None:
    line = parse_line(
        "w", "app", "stderr", b"2026-11-23T21:05:43.123456789Z hello world\r", timestamps=True
    )
    assert line.time == datetime(2026, 11, 23, 21, 5, 43, 123456, tzinfo=UTC)
    assert (line.text, line.stream, line.container, line.workload) == (
        "hello world",
        "stderr",
        "app",
        "w",
    )


def test_line_without_timestamp_keeps_its_text() -> None:
    line = parse_line("w", "app", "stdout", b"no stamp here", timestamps=True)
    assert line.time is None
    assert line.text == "no stamp here"

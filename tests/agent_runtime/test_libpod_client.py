"""The asyncio libpod client's HTTP handling, against a unix-socket server speaking raw bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from flotta.agent.runtime import PodmanApiError, PodmanUnreachableError, WorkloadNotFoundError
from flotta.agent.runtime.libpod import LibpodClient

Answer = Callable[[bytes], bytes]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[LibpodClient, list[bytes], list[Answer]]]:
    """A server that records each request and answers with the next canned answer."""
    requests: list[bytes] = []
    answers: list[Answer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        request = head + await reader.readexactly(length)
        requests.append(request)
        writer.write(answers.pop(0)(request))
        await writer.drain()
        writer.close()

    path = tmp_path / "api.sock"
    unix_server = await asyncio.start_unix_server(handle, path=str(path))
    try:
        yield LibpodClient(path, timeout=5), requests, answers
    finally:
        unix_server.close()
        await unix_server.wait_closed()


async def test_chunked_answer_and_request_shape(
    server: tuple[LibpodClient, list[bytes], list[Answer]],
) -> None:
    client, requests, answers = server
    answers.append(
        lambda _: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n[{"a"\r\n6;ext=1\r\n: 1}]\n\r\n0\r\n\r\n'
        )
    )
    result = await client.call(
        "listing", "POST", "/pods/json", query={"filters": '{"label":["x"]}'}, body=b"yaml"
    )
    assert result == [{"a": 1}]
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v4.0.0/libpod/pods/json?filters=%7B%22label%22")
    assert b"Content-Length: 4" in head
    assert body == b"yaml"


async def test_error_status_becomes_a_typed_error(
    server: tuple[LibpodClient, list[bytes], list[Answer]],
) -> None:
    client, _, answers = server
    body = b'{"cause":"no such pod","message":"no pod with name web","response":404}'
    answers.append(
        lambda _: b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with pytest.raises(WorkloadNotFoundError, match="no pod with name web") as caught:
        await client.call("inspecting pod web", "GET", "/pods/web/json")
    assert caught.value.status == 404
    assert str(caught.value).startswith("inspecting pod web failed (HTTP 404)")
    answers.append(lambda _: b"HTTP/1.1 500 Internal\r\nContent-Length: 4\r\n\r\nboom")
    with pytest.raises(PodmanApiError, match="boom"):
        await client.call("x", "GET", "/x")


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n",
    ],
)
async def test_broken_answers_are_unreachable_errors(
    server: tuple[LibpodClient, list[bytes], list[Answer]], answer: bytes
) -> None:
    client, _, answers = server
    answers.append(lambda _: answer)
    with pytest.raises(PodmanUnreachableError):
        await client.request("GET", "/x")


async def test_oversized_answer_is_refused(
    server: tuple[LibpodClient, list[bytes], list[Answer]],
) -> None:
    client, _, answers = server
    client.max_body = 8
    answers.append(lambda _: b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100)
    with pytest.raises(PodmanApiError, match="over 8 bytes"):
        await client.request("GET", "/x")


async def test_missing_socket_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(PodmanUnreachableError, match=r"nothing\.sock"):
        await LibpodClient(tmp_path / "nothing.sock").request("GET", "/_ping")


@pytest.mark.parametrize("stage", ["head", "body"])
async def test_a_request_cancelled_midway_closes_its_connection(tmp_path: Path, stage: str) -> None:
    """The agent stopping mid-request (its tasks cancelled) leaves no socket open: the server
    sees the end of the stream at once, not when the garbage collector gets to it."""
    connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue(
        maxsize=1
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if stage == "body":  # a head, then a body that never ends
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
        await connections.put((reader, writer))

    path = tmp_path / "api.sock"
    unix_server = await asyncio.start_unix_server(handle, path=str(path))
    request = asyncio.create_task(LibpodClient(path, timeout=30).call("list", "GET", "/pods/json"))
    try:
        reader, writer = await asyncio.wait_for(connections.get(), 5)
        await asyncio.sleep(0.05)  # the client waits for the rest of the answer
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        try:
            assert await asyncio.wait_for(reader.read(), 2) == b""
        finally:
            writer.close()
    finally:
        unix_server.close()
        await unix_server.wait_closed()

"""A small asyncio client for Podman's libpod REST API over its unix socket.

HTTP/1.1 with one connection per request (``Connection: close``), bodies by length, chunked
or until EOF. No threads and no third-party HTTP stack: the agent runs on 1 GB boards.
Long-running responses (followed logs) are read as a stream of body chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotta.agent.runtime.errors import (
    PodmanApiError,
    PodmanUnreachableError,
    WorkloadNotFoundError,
)

API_PREFIX = "/v4.0.0/libpod"
MAX_BODY = 32 * 1024 * 1024
MAX_HEADER_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class LibpodClient:
    """Requests to one Podman API socket; every failure is a ``WorkloadRuntimeError``."""

    def __init__(
        self, socket_path: Path, *, timeout: float = 60.0, max_body: int = MAX_BODY
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_body = max_body

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        time_limit: float | None = None,
    ) -> Response:
        limit = self.timeout if time_limit is None else time_limit
        try:
            async with asyncio.timeout(limit):
                async with self.stream(method, path, query=query, body=body, headers=headers) as (
                    status,
                    response_headers,
                    chunks,
                ):
                    collected = bytearray()
                    async for chunk in chunks:
                        collected += chunk
                        if len(collected) > self.max_body:
                            raise PodmanApiError(
                                f"{method} {path}", status, f"answer over {self.max_body} bytes"
                            )
                    return Response(status, response_headers, bytes(collected))
        except TimeoutError:
            cause = TimeoutError(f"{method} {path}: no complete answer within {limit:g} s")
            raise PodmanUnreachableError(self.socket_path, cause) from None

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[int, Mapping[str, str], AsyncIterator[bytes]]]:
        """Send a request; yield the status, headers and an iterator over body chunks."""
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=MAX_HEADER_LINE
            )
        except OSError as error:
            raise PodmanUnreachableError(self.socket_path, error) from None
        try:
            target = API_PREFIX + path
            if query:
                target += "?" + urllib.parse.urlencode(query)
            head = [f"{method} {target} HTTP/1.1", "Host: podman", "Connection: close"]
            head += [f"{name}: {value}" for name, value in (headers or {}).items()]
            if body is not None or method in ("POST", "PUT"):
                head.append(f"Content-Length: {len(body or b'')}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
            await writer.drain()
            status, response_headers = await _read_head(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            await _close(writer)
            raise PodmanUnreachableError(self.socket_path, error) from None
        except BaseException:  # cancelled while asking: closed now, not by the collector
            writer.close()
            raise
        chunks = self._guarded(_read_body(reader, response_headers))
        try:
            yield status, response_headers, chunks
        finally:
            writer.close()  # first, so that a cancel during the awaits below leaks nothing
            await chunks.aclose()
            await _close(writer)

    async def _guarded(self, chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in chunks:
                yield chunk
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            raise PodmanUnreachableError(self.socket_path, error) from None
        finally:
            await chunks.aclose()

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        time_limit: float | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """A request whose JSON answer is returned, and whose error status raises."""
        response = await self.request(
            method, path, query=query, body=body, headers=headers, time_limit=time_limit
        )
        if response.status not in ok:
            raise api_error(operation, response)
        try:
            return response.json()
        except ValueError:
            return response.body.decode(errors="replace")


def api_error(operation: str, response: Response) -> PodmanApiError:
    message = response.body.decode(errors="replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(response.body).get("message") or message)
    if response.status == 404:
        return WorkloadNotFoundError(operation, response.status, message)
    return PodmanApiError(operation, response.status, message)


def quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = (await reader.readline()).decode("latin-1").strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode("latin-1")
        if not line:
            raise ValueError("connection closed inside the HTTP headers")
        if line in ("\r\n", "\n"):
            return int(parts[1]), headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()


async def _read_body(
    reader: asyncio.StreamReader, headers: Mapping[str, str]
) -> AsyncGenerator[bytes, None]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = (await reader.readline()).decode("latin-1")
            if not size_line:
                raise ValueError("connection closed inside a chunked body")
            size = int(size_line.split(";", 1)[0].strip() or "0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return
            chunk = await reader.readexactly(size)
            await reader.readexactly(2)
            yield chunk
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining > 0:
            chunk = await reader.read(min(remaining, 65536))
            if not chunk:
                raise ValueError("connection closed before the end of the body")
            remaining -= len(chunk)
            yield chunk
    else:
        while chunk := await reader.read(65536):
            yield chunk

"""A plain HTTP/1.0 GET, made from inside a pod's network namespace when asked
(:mod:`flotta.agent.telemetry.netns`): no chunked encoding to handle, the server closes the
connection at the end of the body. Enough for metrics endpoints and HTTP probes, without an
HTTP library in the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from flotta.agent.telemetry.netns import open_connection


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    reason: str
    body: bytes  # at most the max_bytes asked for
    complete: bool  # False: the body went on past max_bytes


async def get(
    host: str,
    port: int,
    path: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    time_limit: float,
    max_bytes: int,
    netns: str = "",
) -> HttpAnswer:
    """``headers`` go after (and may replace) ``Host`` and ``Accept-Encoding: identity``.

    Raises ``TimeoutError`` (no complete answer within ``time_limit``), ``OSError`` (the
    connection failed) or ``ValueError`` (not an HTTP answer)."""
    sent = {"host": ("Host", f"{host}:{port}"), "accept-encoding": ("Accept-Encoding", "identity")}
    for name, value in headers:
        sent[name.lower()] = (name, value)
    request = f"GET {path} HTTP/1.0\r\n" + "".join(f"{n}: {v}\r\n" for n, v in sent.values())
    async with asyncio.timeout(time_limit):
        reader, writer = await open_connection(host, port, netns)
        try:
            writer.write((request + "\r\n").encode("latin-1"))
            await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                raise ValueError(f"no complete HTTP header: {exc}") from None
            body = await _read_to_end(reader, max_bytes + 1)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    reason = parts[2] if len(parts) > 2 else ""
    return HttpAnswer(int(parts[1]), reason, body[:max_bytes], len(body) <= max_bytes)


async def _read_to_end(reader: asyncio.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await reader.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)

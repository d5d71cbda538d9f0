"""Health and metrics over HTTP for the operator and the bridge: ``/healthz`` (the process
answers and none of its loops died), ``/readyz`` (what the process says about itself) and
``/metrics`` (Prometheus text).

A deliberately tiny HTTP server on asyncio streams: three GET routes, one request per
connection, bounded request size and read time. Each process keeps its own readiness answer:

* a ``(ready, reason)`` pair is answered as ``text/plain`` (the operator: one reason);
* a mapping of check names to booleans is answered as ``application/json``, ready when every
  check holds (the bridge: ``{"kubernetes": true, "loops": true, ...}``).

Not ready is ``503``, and so is ``/healthz`` once ``alive()`` says a loop died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

MAX_REQUEST = 8192
READ_TIMEOUT = 5.0

Readiness = tuple[bool, str] | Mapping[str, bool]


class HealthServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        readiness: Callable[[], Readiness],
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.readiness = readiness
        self.alive = alive
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, content_type, body = self._route(head[:MAX_REQUEST])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        try:
            writer.write(
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(self, head: bytes) -> tuple[int, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or parts[0] != b"GET":
            return 405, "text/plain", b"only GET\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/healthz":
            if not self.alive():
                return 503, "text/plain", b"a loop died\n"
            return 200, "text/plain", b"ok\n"
        if path == b"/readyz":
            return _readiness_answer(self.readiness())
        if path == b"/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain", b"not found\n"


def _readiness_answer(answer: Readiness) -> tuple[int, str, bytes]:
    if isinstance(answer, tuple):
        ready, reason = answer
        return (200 if ready else 503), "text/plain", (reason + "\n").encode()
    body = json.dumps(dict(answer), sort_keys=True).encode() + b"\n"
    return (200 if all(answer.values()) else 503), "application/json", body

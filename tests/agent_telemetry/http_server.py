"""A small real HTTP server on loopback for scrape tests: answers every GET with the
configured status and body (or never answers, to test time limits)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class MetricsEndpoint:
    body: bytes = b""
    status: str = "200 OK"
    silent: bool = False
    port: int = 0
    requests: list[str] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0].decode())
            if self.silent:
                await asyncio.sleep(3600)
            writer.write(
                f"HTTP/1.0 {self.status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                + self.body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # shut down by the test; streams' done callback must not see a cancellation
        finally:
            self.handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def metrics_endpoint(body: bytes = b"") -> AsyncIterator[MetricsEndpoint]:
    endpoint = MetricsEndpoint(body=body)
    server = await asyncio.start_server(endpoint.handle, "127.0.0.1", 0)
    endpoint.port = server.sockets[0].getsockname()[1]
    try:
        yield endpoint
    finally:
        server.close()
        handlers = list(endpoint.handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

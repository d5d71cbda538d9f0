"""The shared health server (flotta.health): routes, the two readiness answers, bad requests."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import CollectorRegistry, Counter

from flotta.health import HealthServer, Readiness


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def test_text_readiness_liveness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("flotta_test_things", "things", registry=registry).inc()
    state: dict[str, object] = {"ready": (False, "caches not synced"), "alive": True}

    def readiness() -> Readiness:
        return state["ready"]  # type: ignore[return-value]

    server = HealthServer(
        host="127.0.0.1",
        port=0,
        registry=registry,
        readiness=readiness,
        alive=lambda: bool(state["alive"]),
    )
    port = await server.start()
    try:
        assert (await request(port, get("/readyz")))[0::2] == (503, b"caches not synced\n")
        state["ready"] = (True, "ready")
        status, headers, body = await request(port, get("/readyz?verbose"))
        assert (status, headers["Content-Type"], body) == (200, "text/plain", b"ready\n")
        assert (await request(port, get("/healthz")))[0::2] == (200, b"ok\n")
        status, _, body = await request(port, get("/metrics"))
        assert status == 200
        assert b"flotta_test_things_total 1.0" in body
        state["alive"] = False
        assert (await request(port, get("/healthz")))[0::2] == (503, b"a loop died\n")
        assert (await request(port, get("/nope")))[0] == 404
        assert (await request(port, b"POST /healthz HTTP/1.1\r\n\r\n"))[0] == 405
    finally:
        await server.close()


async def test_check_readiness_is_json_and_needs_every_check() -> None:
    checks = {"mqtt": True, "nats": False}
    server = HealthServer(
        host="127.0.0.1", port=0, registry=CollectorRegistry(), readiness=lambda: checks
    )
    port = await server.start()
    try:
        status, headers, body = await request(port, get("/readyz"))
        assert (status, headers["Content-Type"]) == (503, "application/json")
        assert json.loads(body) == {"mqtt": True, "nats": False}
        checks["nats"] = True
        assert (await request(port, get("/readyz")))[0] == 200
        assert (await request(port, b"GET /healthz"))[0] == 400  # no blank line ends the head
    finally:
        await server.close()

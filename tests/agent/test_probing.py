"""HTTP and TCP probes as the agent runs them: from inside a network namespace that only the
probed server lives in, as a pod's does. Exec probes run in Podman's containers
(tests/agent/test_agent_probes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotta.agent.probe_schedule import ProbeResult
from flotta.agent.probing import run_probe
from flotta.agent.runtime import PodmanRuntime
from flotta.agent.telemetry.netns import netns_of
from flotta.agent.telemetry.scraping import PodEndpoint
from flotta.schemas.probes import HttpGet, Probe, TcpSocket
from tests.fixtures.netns import namespaced_program

# /ready answers 200 when the probe's header came, /slow never answers, the rest 503.
SERVER = """
import http.server, socketserver, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(30)
        ok = self.path == "/ready" and self.headers.get("X-Probe") == "yes"
        agent = self.headers.get("User-Agent", "")
        body = (f"ready for {agent}" if ok else "warming up").encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
async def pod_server() -> AsyncIterator[tuple[PodEndpoint, int]]:
    async with namespaced_program(SERVER) as (pid, port):
        yield PodEndpoint("", netns_of(pid)), int(port)


def http(port: int, path: str, **probe: int) -> Probe:
    action = HttpGet(port, path, headers=(("X-Probe", "yes"),))
    return Probe("app", "readiness", action, **probe)


async def probe_pod(probe: Probe, endpoint: PodEndpoint | None) -> ProbeResult | None:
    runtime = PodmanRuntime(Path("/nonexistent/podman.sock"), files_root=Path("/nonexistent"))
    return await run_probe(probe, runtime=runtime, container_id="c1", endpoint=endpoint)


async def test_http_probes_inside_the_pods_namespace(
    pod_server: tuple[PodEndpoint, int],
) -> None:
    endpoint, port = pod_server
    assert await probe_pod(http(port, "/ready"), endpoint) == ProbeResult(
        True, "HTTP 200 OK: ready for flotta-probe/1"
    )
    assert await probe_pod(http(port, "/other"), endpoint) == ProbeResult(
        False, "HTTP 503 Service Unavailable: warming up"
    )
    started = asyncio.get_running_loop().time()
    timed_out = await probe_pod(http(port, "/slow", timeout=1), endpoint)
    assert timed_out == ProbeResult(False, "no answer within 1 s")
    assert asyncio.get_running_loop().time() - started < 3
    outside = await probe_pod(http(port, "/ready"), PodEndpoint("", ""))
    assert outside is not None
    assert not outside.ok  # the port exists only inside the namespace


async def test_tcp_probes_inside_the_pods_namespace(pod_server: tuple[PodEndpoint, int]) -> None:
    endpoint, port = pod_server
    listening = Probe("app", "liveness", TcpSocket(port))
    assert await probe_pod(listening, endpoint) == ProbeResult(True)
    closed = await probe_pod(Probe("app", "liveness", TcpSocket(9)), endpoint)
    assert closed is not None
    assert not closed.ok
    assert closed.answer == "127.0.0.1:9: Connection refused"


async def test_a_pod_without_a_known_namespace_is_not_held_against_it() -> None:
    assert await probe_pod(Probe("app", "liveness", TcpSocket(80)), None) is None

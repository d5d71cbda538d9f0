from collections.abc import AsyncIterator
from dataclasses import replace

import msgspec
import pytest

from flotta.agent.telemetry.errors import ScrapeError
from flotta.agent.telemetry.netns import netns_of
from flotta.agent.telemetry.samples import Measurement
from flotta.agent.telemetry.scraping import (
    PodEndpoint,
    ScrapeTarget,
    http_get,
    relabel,
    scrape,
    scrape_targets,
)
from flotta.schemas.wire import DesiredWorkload
from flotta.schemas.wire.desired import WorkloadMetricsSettings
from tests.agent_telemetry.http_server import metrics_endpoint
from tests.fixtures.netns import namespaced_program

EXPOSITION = b"""\
# TYPE app_requests_total counter
app_requests_total{code="200",workload="spoofed"} 7
app_temperature 21.5 1700000000000
"""


def workload(name: str, metrics: WorkloadMetricsSettings | None) -> DesiredWorkload:
    return DesiredWorkload(name=name, namespace="default", pod_spec={}, metrics=metrics)


def target(port: int, path: str = "/metrics", container: str = "") -> ScrapeTarget:
    return ScrapeTarget("app", container, "127.0.0.1", port, path, 1.0, None)


def test_targets_from_workload_settings() -> None:
    workloads = [
        workload("none", None),
        workload("no-endpoint", WorkloadMetricsSettings(port=9000)),
        workload(
            "app",
            WorkloadMetricsSettings(
                path="metrics",
                port=8080,
                interval=15,
                allow_list=["app_*"],
                containers={
                    "side": {"port": 9100, "path": "/side"},
                    "off": {"port": 9200, "disabled": True},
                    "bad": {"port": "x"},
                },
            ),
        ),
    ]
    targets = scrape_targets(workloads, {"app": "10.88.0.5", "none": "10.88.0.6"})
    assert [(t.container, t.url, t.interval, t.allow_list, t.netns) for t in targets] == [
        ("", "http://10.88.0.5:8080/metrics", 15.0, ("app_*",), ""),
    ]


def containers(*names: str) -> dict[str, object]:
    return {"containers": [{"name": name, "image": "i"} for name in names]}


def test_each_container_as_upstream_one_scrape_per_endpoint() -> None:
    settings = WorkloadMetricsSettings(
        path="/metrics",
        port=8080,
        containers={
            "side": {"port": 9100, "path": "/side"},
            "off": {"port": 9200, "disabled": True},
            "same-port": {"path": "/other"},
            "absent": {"port": 9300},
        },
    )
    app = DesiredWorkload(
        name="app",
        namespace="default",
        pod_spec=containers("main", "helper", "side", "off", "same-port"),
        metrics=settings,
    )
    pod = PodEndpoint("10.89.0.7", "/proc/42/ns/net")
    targets = scrape_targets([app], {"app": pod})
    assert [(t.container, t.url, t.netns) for t in targets] == [
        ("", "http://10.89.0.7:8080/metrics", "/proc/42/ns/net"),  # main and helper
        ("same-port", "http://10.89.0.7:8080/other", "/proc/42/ns/net"),
        ("side", "http://10.89.0.7:9100/side", "/proc/42/ns/net"),
    ]
    # one container at the workload's port: its samples carry the container's name
    (only,) = scrape_targets(
        [msgspec.structs.replace(app, pod_spec=containers("main"))], {"app": pod}
    )
    assert (only.container, only.port) == ("main", 8080)
    # on the host network the pod has no address of its own: its loopback, in its namespace
    (host,) = scrape_targets(
        [msgspec.structs.replace(app, pod_spec=containers("main"))],
        {"app": PodEndpoint("", "/proc/42/ns/net")},
    )
    assert host.url == "http://127.0.0.1:8080/metrics"
    assert scrape_targets([app], {"app": PodEndpoint("")}) == []
    # port 0 and no container entry: nothing to scrape
    idle = msgspec.structs.replace(app, metrics=WorkloadMetricsSettings(port=0))
    assert scrape_targets([idle], {"app": pod}) == []


def test_relabel_adds_the_source_and_keeps_exported_labels() -> None:
    measurements = [Measurement("m", 1.0, {"workload": "spoofed", "device": "sensor-3", "x": "1"})]
    (result,) = relabel(measurements, target=target(1, container="c"))
    assert result.labels == {
        "exported_workload": "spoofed",
        "exported_device": "sensor-3",
        "x": "1",
        "workload": "app",
        "container": "c",
    }


async def test_scrape_a_real_http_endpoint() -> None:
    async with metrics_endpoint(EXPOSITION) as endpoint:
        samples = await scrape(target(endpoint.port), time_limit=5)
    assert endpoint.requests == ["GET /metrics HTTP/1.0"]
    assert [(s.name, s.value, s.timestamp_ms) for s in samples] == [
        ("app_requests_total", 7.0, None),
        ("app_temperature", 21.5, 1700000000000),
    ]
    assert samples[0].labels == {
        "code": "200",
        "exported_workload": "spoofed",
        "workload": "app",
    }


async def test_large_answers_arrive_whole() -> None:
    body = b"".join(f'm{{i="{i}"}} {i}\n'.encode() for i in range(20000))
    async with metrics_endpoint(body) as endpoint:
        samples = await scrape(target(endpoint.port), time_limit=5)
    assert len(samples) == 20000


async def test_http_errors_are_scrape_errors() -> None:
    async with metrics_endpoint(b"gone") as endpoint:
        endpoint.status = "404 Not Found"
        with pytest.raises(ScrapeError, match="HTTP status 404 Not Found"):
            await http_get("127.0.0.1", endpoint.port, "/metrics", time_limit=5)
        endpoint.status = "200 OK"
        endpoint.body = b"not { prometheus"
        with pytest.raises(ScrapeError, match="line 1"):
            await scrape(target(endpoint.port), time_limit=5)
        endpoint.body = b"x" * 100
        with pytest.raises(ScrapeError, match="over 10 bytes"):
            await http_get("127.0.0.1", endpoint.port, "/", time_limit=5, max_bytes=10)
        endpoint.silent = True
        with pytest.raises(ScrapeError, match=r"no complete answer within 0\.2 s"):
            await http_get("127.0.0.1", endpoint.port, "/", time_limit=0.2)
    with pytest.raises(ScrapeError, match=r"http://127.0.0.1:\d+/ failed: .*Connect call failed"):
        await http_get("127.0.0.1", endpoint.port, "/", time_limit=5)


# A server whose port exists only inside a network namespace of its own, as a pod's does.
NAMESPACED_SERVER = """
import http.server, socketserver, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"inside_up 1\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
async def namespaced_server() -> AsyncIterator[tuple[int, int]]:
    """(pid, port) of an HTTP server on the loopback of a fresh network namespace."""
    async with namespaced_program(NAMESPACED_SERVER) as (pid, port):
        yield pid, int(port)


async def test_scrape_from_inside_the_pods_network_namespace(
    namespaced_server: tuple[int, int],
) -> None:
    pid, port = namespaced_server
    inside = ScrapeTarget("app", "main", "127.0.0.1", port, "/metrics", 1.0, None, netns_of(pid))
    for _ in range(3):  # the agent's threads stay in its own namespace
        samples = await scrape(inside, time_limit=5)
        assert [(s.name, s.value, s.labels["container"]) for s in samples] == [
            ("inside_up", 1.0, "main")
        ]
    with pytest.raises(ScrapeError, match="Connect call failed"):
        await scrape(replace(inside, netns=""), time_limit=5)
    with pytest.raises(ScrapeError, match="No such file"):
        await scrape(replace(inside, netns=netns_of(2**22 + 1)), time_limit=5)

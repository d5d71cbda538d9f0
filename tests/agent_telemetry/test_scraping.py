import pytest

from flotta.agent.telemetry.errors import ScrapeError
from flotta.agent.telemetry.samples import Measurement
from flotta.agent.telemetry.scraping import ScrapeTarget, http_get, relabel, scrape, scrape_targets
from flotta.schemas.wire import DesiredWorkload
from flotta.schemas.wire.desired import WorkloadMetricsSettings
from tests.agent_telemetry.http_server import metrics_endpoint

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
    assert [(t.container, t.url, t.interval, t.allow_list) for t in targets] == [
        ("", "http://10.88.0.5:8080/metrics", 15.0, ("app_*",)),
        ("side", "http://10.88.0.5:9100/side", 15.0, ("app_*",)),
    ]


def test_relabel_adds_the_source_and_keeps_exported_labels() -> None:
    measurements = [Measurement("m", 1.0, {"workload": "spoofed", "x": "1"})]
    (result,) = relabel(measurements, device_id="dev-1", target=target(1, container="c"))
    assert result.labels == {
        "exported_workload": "spoofed",
        "x": "1",
        "device": "dev-1",
        "workload": "app",
        "container": "c",
    }


async def test_scrape_a_real_http_endpoint() -> None:
    async with metrics_endpoint(EXPOSITION) as endpoint:
        samples = await scrape(target(endpoint.port), device_id="dev-1", time_limit=5)
    assert endpoint.requests == ["GET /metrics HTTP/1.0"]
    assert [(s.name, s.value, s.timestamp_ms) for s in samples] == [
        ("app_requests_total", 7.0, None),
        ("app_temperature", 21.5, 1700000000000),
    ]
    assert samples[0].labels == {
        "code": "200",
        "exported_workload": "spoofed",
        "device": "dev-1",
        "workload": "app",
    }


async def test_large_answers_arrive_whole() -> None:
    body = b"".join(f'm{{i="{i}"}} {i}\n'.encode() for i in range(20000))
    async with metrics_endpoint(body) as endpoint:
        samples = await scrape(target(endpoint.port), device_id="d", time_limit=5)
    assert len(samples) == 20000


async def test_http_errors_are_scrape_errors() -> None:
    async with metrics_endpoint(b"gone") as endpoint:
        endpoint.status = "404 Not Found"
        with pytest.raises(ScrapeError, match="HTTP status 404 Not Found"):
            await http_get("127.0.0.1", endpoint.port, "/metrics", time_limit=5)
        endpoint.status = "200 OK"
        endpoint.body = b"not { prometheus"
        with pytest.raises(ScrapeError, match="line 1"):
            await scrape(target(endpoint.port), device_id="d", time_limit=5)
        endpoint.body = b"x" * 100
        with pytest.raises(ScrapeError, match="over 10 bytes"):
            await http_get("127.0.0.1", endpoint.port, "/", time_limit=5, max_bytes=10)
        endpoint.silent = True
        with pytest.raises(ScrapeError, match=r"no complete answer within 0\.2 s"):
            await http_get("127.0.0.1", endpoint.port, "/", time_limit=0.2)
    with pytest.raises(ScrapeError, match=r"http://127.0.0.1:\d+/ failed: .*Connect call failed"):
        await http_get("127.0.0.1", endpoint.port, "/", time_limit=5)

"""Metrics and logs sinks fed by one exporter: each sink reads the stream with its own durable
consumer, so a sink that is down holds back only its own kind's delivery."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NatsClient

from flotta.exporter.app import single
from flotta.exporter.loki_sink import LokiSettings, LokiSink
from flotta.exporter.routing import Receiver
from flotta.schemas.wire.telemetry import LogsBatch
from tests.exporter.conftest import prometheus_route
from tests.exporter.log_batches import ticks
from tests.exporter.prometheus_server import PrometheusServer
from tests.exporter.support import consumer_lag, eventually, metrics_batch, now_ms, publish_batch
from tests.fixtures.loki import LokiStandIn


async def test_metrics_reach_prometheus_while_loki_is_down_then_logs_follow(
    nc: NatsClient, prometheus: PrometheusServer, loki_server: LokiStandIn, run_exporter: Any
) -> None:
    now = now_ms()
    await publish_batch(nc, "site-a", "dev-1", metrics_batch(1, [now]))
    await publish_batch(nc, "site-a", "dev-1", LogsBatch(stream="b0", sequence=1, lines=ticks(3)))
    await loki_server.stop()
    loki = LokiSink(LokiSettings(loki_server.url, timeout_seconds=2))
    await run_exporter([prometheus_route(Receiver(prometheus.write_url)), single(loki, LogsBatch)])

    async def metrics_done() -> bool:
        return await consumer_lag(nc, "prometheus") == 0

    await eventually(metrics_done, within=15, what="metrics delivered")
    assert prometheus.samples('flotta_test_value{device="dev-1"}')
    assert await consumer_lag(nc, "loki") == 1  # Loki is away: its batch waits in JetStream

    await loki_server.start()

    async def logs_done() -> bool:
        return await consumer_lag(nc, "loki") == 0

    await eventually(logs_done, within=30, what="logs delivered once Loki is back")
    assert loki_server.lines(device="dev-1") == ["tick-0", "tick-1", "tick-2"]

"""Fixtures of the exporter tests: a real Prometheus receiving remote writes, a nats-server
with the bridge's streams and a client of it, and the exporter run in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from flotta.dev.nats_server import NatsServer
from flotta.exporter.app import Exporter, ExporterSettings, SinkRoute
from flotta.exporter.consuming import DeliverySettings
from flotta.exporter.receivers import DefaultReceivers, ReceiverSinks
from flotta.exporter.routing import Receiver
from flotta.schemas.wire.telemetry import MetricsBatch
from tests.exporter.prometheus_server import PrometheusServer
from tests.exporter.support import connect, create_streams


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path / "prometheus", out_of_order_window="30m")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsClient]:
    await create_streams(nats_server.url)
    client = await connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


def prometheus_route(receiver: Receiver, *, ack_wait: float = 30.0) -> SinkRoute[MetricsBatch]:
    sinks = ReceiverSinks(DefaultReceivers(receiver))
    return SinkRoute("prometheus", MetricsBatch, sinks.select, sinks.aclose, ack_wait=ack_wait)


QUICK = DeliverySettings(fetch_wait=0.2, lag_every=0.5)  # lag read often in tests


@pytest.fixture
async def run_exporter(
    nats_server: NatsServer,
) -> AsyncIterator[Callable[..., Any]]:
    """Start an exporter in this process (closed at the end): ``await run_exporter(routes)``."""
    started: list[Exporter] = []

    async def start(routes: list[SinkRoute[Any]], delivery: DeliverySettings = QUICK) -> Exporter:
        exporter = Exporter(
            ExporterSettings(nats_url=nats_server.url, delivery=delivery, health_port=0), routes
        )
        started.append(exporter)
        await exporter.start()
        return exporter

    try:
        yield start
    finally:
        for exporter in started:
            await exporter.close()

"""The exporter against a real Prometheus (remote-write receiver, out-of-order window 30 m)
and a real nats-server holding the bridge's streams, batches published as the bridge does."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from flotta.backoff import BackoffPolicy
from flotta.exporter.app import Exporter, SinkRoute
from flotta.exporter.consuming import DeliverySettings
from flotta.exporter.jetstream import REASON_HEADER, SEQUENCE_HEADER, SUBJECT_HEADER
from flotta.exporter.routing import Receiver
from flotta.schemas.wire.telemetry import MetricSample, MetricsBatch
from tests.exporter.conftest import prometheus_route
from tests.exporter.prometheus_server import PrometheusServer
from tests.exporter.support import (
    consumer_lag,
    dead_letters,
    eventually,
    metrics_batch,
    now_ms,
    publish_batch,
)

MINUTE = 60_000
SERIES = 'flotta_test_value{namespace="ns"}'


def counted(exporter: Exporter, name: str, **labels: str) -> float:
    value = exporter.metrics.registry.get_sample_value(name, {"sink": "prometheus", **labels})
    return value or 0.0


async def drained(nc: NatsClient) -> bool:
    return await consumer_lag(nc) == 0


async def test_an_offline_device_s_samples_land_at_their_original_timestamps(
    nc: NatsClient, prometheus: PrometheusServer, run_exporter: Any
) -> None:
    now = now_ms()
    await publish_batch(nc, "ns", "d1", metrics_batch(1, [now]))
    await run_exporter([prometheus_route(Receiver(prometheus.write_url))])
    await eventually(lambda: prometheus.samples(SERIES), within=10, what="the online sample")

    # What the device buffered during 20 minutes offline arrives after that newer sample:
    # older than the series' newest sample, within the receiver's out-of-order window.
    offline = [now - 20 * MINUTE + i * 15_000 for i in range(80)]
    for sequence, start in enumerate(range(0, 80, 20), start=2):
        await publish_batch(nc, "ns", "d1", metrics_batch(sequence, offline[start : start + 20]))
    await eventually(lambda: drained(nc), within=15, what="consumer drained")

    stored = prometheus.samples(SERIES)["d1/flotta_test_value"]
    assert stored == [(t, float(t)) for t in [*offline, now]]


async def test_samples_too_old_for_the_receiver_are_counted_and_the_rest_lands(
    nc: NatsClient, prometheus: PrometheusServer, run_exporter: Any
) -> None:
    now = now_ms()
    await publish_batch(nc, "ns", "d1", metrics_batch(1, [now]))
    exporter = await run_exporter([prometheus_route(Receiver(prometheus.write_url))])
    await eventually(lambda: drained(nc), within=10, what="first batch delivered")

    too_old = [now - 120 * MINUTE + i * 1000 for i in range(3)]  # beyond the 30 m window
    late = now - MINUTE  # within it
    mixed = MetricsBatch(
        stream="buffer-1",
        sequence=2,
        samples=[
            *(
                MetricSample(name="flotta_test_value", value=float(t), timestamp_ms=t)
                for t in too_old
            ),
            MetricSample(name="flotta_test_value", value=float(late), timestamp_ms=late),
            MetricSample(name="flotta_other", value=7.0, timestamp_ms=now),
        ],
    )
    await publish_batch(nc, "ns", "d1", mixed)
    await eventually(lambda: drained(nc), within=15, what="mixed batch acknowledged")

    stored = prometheus.samples('{namespace="ns"}')
    assert stored["d1/flotta_test_value"] == [(late, float(late)), (now, float(now))]
    assert stored["d1/flotta_other"] == [(now, 7.0)]
    assert counted(exporter, "flotta_exporter_too_old_items_total") == 3
    assert counted(exporter, "flotta_exporter_sent_items_total") == 3  # 1 + 2 of the mixed
    assert counted(exporter, "flotta_exporter_batches_total", outcome="sent") == 2


async def test_malformed_batches_are_dead_lettered_with_the_reason_and_others_flow(
    nc: NatsClient, prometheus: PrometheusServer, run_exporter: Any
) -> None:
    now = now_ms()
    await publish_batch(nc, "ns", "d1", metrics_batch(1, [now - 2000]))
    await nc.jetstream().publish(
        "flotta.device.ns.d2.metrics", b"{not json", headers={"Nats-Msg-Id": "x"}
    )
    invalid = metrics_batch(1, [now], labels={"bad-label": "x"})  # valid wire, no Prometheus label
    await publish_batch(nc, "ns", "d3", invalid)
    await publish_batch(nc, "ns", "d1", metrics_batch(2, [now - 1000]))
    exporter = await run_exporter([prometheus_route(Receiver(prometheus.write_url))])
    await eventually(lambda: drained(nc), within=30, what="every message acknowledged")

    assert prometheus.samples(SERIES) == {
        "d1/flotta_test_value": [(now - 2000, float(now - 2000)), (now - 1000, float(now - 1000))]
    }
    letters = await dead_letters(nc)
    assert [m.headers[SUBJECT_HEADER] for m in letters] == [
        "flotta.device.ns.d2.metrics",
        "flotta.device.ns.d3.metrics",
    ]
    assert letters[0].headers[REASON_HEADER].startswith("undecodable: not JSON")
    assert letters[1].headers[REASON_HEADER] == (
        "refused: label name 'bad-label' is not a valid Prometheus label name"
    )
    assert letters[0].headers[SEQUENCE_HEADER] == "2"
    assert letters[0].data == b"{not json"
    assert counted(exporter, "flotta_exporter_dead_lettered_total", reason="undecodable") == 1
    assert counted(exporter, "flotta_exporter_dead_lettered_total", reason="refused") == 1


# A short outage: the retry delay is capped at 1 s here (30 s by default), so what a longer
# outage adds is only more retries of the same batches; the test shows the lag growing
# while the receiver is away and draining once it is back, without loss.
OUTAGE = 8.0


async def test_a_receiver_that_is_down_builds_lag_then_catches_up(
    nc: NatsClient, prometheus: PrometheusServer, run_exporter: Any
) -> None:
    prometheus.stop()
    quick = DeliverySettings(
        fetch_batch=4,
        fetch_wait=0.2,
        lag_every=0.5,
        retry=BackoffPolicy(base=0.2, cap=1.0, stable_after=0.0, jitter=0.5),
    )
    exporter = await run_exporter([prometheus_route(Receiver(prometheus.write_url))], quick)
    now = now_ms()
    times = [now - 10_000 + i * 100 for i in range(40)]
    for sequence in range(10):
        await publish_batch(
            nc, "ns", "d1", metrics_batch(sequence, times[4 * sequence : 4 * sequence + 4])
        )
    await asyncio.sleep(OUTAGE)
    assert await consumer_lag(nc) == 10
    assert counted(exporter, "flotta_exporter_retries_total") >= 3
    assert counted(exporter, "flotta_exporter_sent_items_total") == 0

    prometheus.start()
    await eventually(lambda: drained(nc), within=20, what="caught up")
    assert prometheus.samples(SERIES)["d1/flotta_test_value"] == [(t, float(t)) for t in times]
    assert counted(exporter, "flotta_exporter_dead_lettered_total", reason="refused") == 0


class BrokenSink:
    name = "prometheus"

    async def send(self, batches: Any) -> Any:
        raise RuntimeError("sink bug")

    async def aclose(self) -> None:
        return None


BROKEN = BrokenSink()  # one instance: lanes are per sink instance


def broken_select(_batch: Any) -> Any:
    raise RuntimeError("routing bug")


@pytest.mark.parametrize(
    ("select", "bug"),
    [(broken_select, "routing bug"), (lambda _batch: BROKEN, "sink bug")],
    ids=["select", "send"],
)
async def test_a_dying_loop_makes_the_exporter_unhealthy(
    nc: NatsClient, run_exporter: Any, select: Any, bug: str
) -> None:
    async def nothing() -> None:
        return None

    exporter = await run_exporter([SinkRoute("prometheus", MetricsBatch, select, nothing)])
    assert exporter.health is not None
    url = f"http://127.0.0.1:{exporter.health.port}/healthz"
    assert await asyncio.to_thread(_status, url) == 200
    await publish_batch(nc, "ns", "d1", metrics_batch(1, [now_ms()]))
    failure = await asyncio.wait_for(exporter.wait_failed(), 10)
    assert bug in repr(failure) or bug in repr(failure.__cause__)
    assert await asyncio.to_thread(_status, url) == 503
    assert exporter.readiness()["loops"] is False


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


pytestmark = pytest.mark.timeout(90)

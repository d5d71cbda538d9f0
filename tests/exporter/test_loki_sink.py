"""The Loki sink over HTTP, against the Loki stand-in (tests/fixtures/loki.py: why it is not a
real Loki, and which of Loki 2.4's answers it reproduces); lines are read back with
``/loki/api/v1/query_range`` as a user would."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from flotta.exporter.loki_sink import LokiSettings, LokiSink, timestamp_ns
from flotta.exporter.sink import Accepted, Refused, Retry
from flotta.pki.store import PkiStore
from tests.exporter.log_batches import T0, batch, line, ticks
from tests.fixtures.loki import LokiLimits, LokiStandIn


async def query_range(
    server: LokiStandIn, query: str, *, start: datetime = T0 - timedelta(days=1)
) -> list[dict[str, Any]]:
    params = {
        "query": query,
        "start": str(timestamp_ns(start)),
        "end": str(timestamp_ns(datetime.now(UTC) + timedelta(days=1))),
        "direction": "forward",
        "limit": "5000",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/loki/api/v1/query_range", params=params) as answer,
    ):
        assert answer.status == 200
        document = await answer.json()
    assert document["status"] == "success"
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


async def test_lines_arrive_with_their_labels_and_device_timestamps(
    loki_server: LokiStandIn,
) -> None:
    sink = LokiSink(LokiSettings(loki_server.url))
    try:
        outcome = await sink.send(
            [
                batch(
                    [
                        line("started", at=T0),
                        line("failed ✗", at=T0 + timedelta(microseconds=1), stream="stderr"),
                        line("multi\nline", at=T0 + timedelta(seconds=2)),
                    ]
                )
            ]
        )
    finally:
        await sink.aclose()
    assert outcome == Accepted(3)
    result = await query_range(loki_server, '{namespace="site-a", device="dev-1"}')
    by_stream = {r["stream"]["stream"]: r for r in result}
    assert by_stream["stdout"]["stream"] == {
        "namespace": "site-a",
        "device": "dev-1",
        "workload": "app",
        "container": "main",
        "stream": "stdout",
    }
    assert by_stream["stdout"]["values"] == [
        [str(timestamp_ns(T0)), "started"],
        [str(timestamp_ns(T0 + timedelta(seconds=2))), "multi\nline"],
    ]
    assert by_stream["stderr"]["values"] == [["1714979289123457000", "failed ✗"]]


async def test_order_is_kept_per_stream_across_batches_and_pushes(
    loki_server: LokiStandIn,
) -> None:
    # a tiny request cap: the sends are split into many pushes
    sink = LokiSink(LokiSettings(loki_server.url, max_request_bytes=300))
    try:
        for n in range(4):
            start = T0 + timedelta(minutes=n)
            outcome = await sink.send(
                [
                    batch(ticks(20, start=start, workload="a"), sequence=2 * n),
                    batch(ticks(20, start=start, workload="b"), sequence=2 * n + 1),
                ]
            )
            assert outcome == Accepted(40)
    finally:
        await sink.aclose()
    assert len(loki_server.requests) > 8
    for workload in ("a", "b"):
        (stream,) = await query_range(loki_server, f'{{workload="{workload}"}}')
        assert [v[1] for v in stream["values"]] == [f"tick-{i}" for i in range(20)] * 4
        stamps = [int(v[0]) for v in stream["values"]]
        assert stamps == sorted(stamps)


async def test_a_batch_delivered_twice_is_stored_once(loki_server: LokiStandIn) -> None:
    sink = LokiSink(LokiSettings(loki_server.url))
    first = batch(ticks(5), sequence=3)
    try:
        assert await sink.send([first]) == Accepted(5)
        assert await sink.send([first]) == Accepted(5)  # a redelivered JetStream message
        assert await sink.send([first, batch(ticks(5, start=T0 + timedelta(hours=1)))]) == (
            Accepted(10)
        )
    finally:
        await sink.aclose()
    (stream,) = await query_range(loki_server, '{device="dev-1"}')
    assert [v[1] for v in stream["values"]] == [f"tick-{i}" for i in range(5)] * 2


async def test_entries_loki_holds_too_old_are_counted_and_the_rest_stored() -> None:
    server = LokiStandIn(LokiLimits(reject_old_samples=True))
    await server.start()
    sink = LokiSink(LokiSettings(server.url))
    now = datetime.now(UTC)
    old = ticks(3, start=now - timedelta(days=8))  # past reject_old_samples_max_age (7 days)
    fresh = ticks(2, start=now - timedelta(hours=1))
    try:
        outcome = await sink.send([batch([*old, *fresh])])
    finally:
        await sink.aclose()
        await server.stop()
    assert outcome == Accepted(2, too_old=3)
    assert server.lines(device="dev-1") == ["tick-0", "tick-1"]


async def test_entries_too_far_behind_their_stream_are_counted() -> None:
    server = LokiStandIn(LokiLimits(unordered_writes=True))  # Loki 2.4's default
    await server.start()
    sink = LokiSink(LokiSettings(server.url))
    now = datetime.now(UTC)
    try:
        assert await sink.send([batch([line("newest", at=now)], sequence=1)]) == Accepted(1)
        late = [
            line("2 h late", at=now - timedelta(hours=2)),
            line("late", at=now + timedelta(microseconds=1)),
        ]
        outcome = await sink.send([batch(late, sequence=0)])
    finally:
        await sink.aclose()
        await server.stop()
    assert outcome == Accepted(1, too_old=1)
    assert server.lines(device="dev-1") == ["newest", "late"]


async def test_with_ordered_writes_entries_out_of_order_are_counted() -> None:
    server = LokiStandIn(LokiLimits(unordered_writes=False))
    await server.start()
    sink = LokiSink(LokiSettings(server.url))
    try:
        assert await sink.send([batch(ticks(3, start=T0 + timedelta(minutes=5)))]) == Accepted(3)
        outcome = await sink.send([batch(ticks(4), sequence=1)])
    finally:
        await sink.aclose()
        await server.stop()
    assert outcome == Accepted(0, too_old=4)


async def test_loki_down_answers_retry_and_the_lines_arrive_once_it_is_back(
    loki_server: LokiStandIn,
) -> None:
    sink = LokiSink(LokiSettings(loki_server.url, timeout_seconds=2))
    lines = batch(ticks(5))
    try:
        await loki_server.stop()
        outcome = await sink.send([lines])
        assert isinstance(outcome, Retry)
        assert loki_server.url.removeprefix("http://") in outcome.reason
        await loki_server.start()
        assert await sink.send([lines]) == Accepted(5)
    finally:
        await sink.aclose()
    assert loki_server.lines(device="dev-1") == [f"tick-{i}" for i in range(5)]


async def test_overload_and_server_errors_answer_retry_honouring_retry_after(
    loki_server: LokiStandIn,
) -> None:
    sink = LokiSink(LokiSettings(loki_server.url))
    try:
        loki_server.fail_next(
            429, "Ingestion rate limit exceeded for user fake", headers={"Retry-After": "7"}
        )
        assert await sink.send([batch(ticks(1))]) == Retry(
            "loki answered 429: Ingestion rate limit exceeded for user fake", 7.0
        )
        loki_server.fail_next(503, "Service Unavailable")
        assert await sink.send([batch(ticks(1))]) == Retry(
            "loki answered 503: Service Unavailable", None
        )
        loki_server.fail_next(500, "rpc error: code = Unavailable")
        assert isinstance(await sink.send([batch(ticks(1))]), Retry)
        assert await sink.send([batch(ticks(1))]) == Accepted(1)
    finally:
        await sink.aclose()


async def test_invalid_input_is_refused_with_lokis_message() -> None:
    server = LokiStandIn(LokiLimits(max_line_size=100))
    await server.start()
    sink = LokiSink(LokiSettings(server.url))
    try:
        outcome = await sink.send([batch([line("x" * 500)])])
        server.fail_next(401, "no org id")
        unauthorised = await sink.send([batch(ticks(1))])
    finally:
        await sink.aclose()
        await server.stop()
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith("loki answered 400: Max entry size '100' bytes exceeded")
    assert unauthorised == Refused("loki answered 401: no org id")


async def test_the_tenant_is_sent_for_a_multi_tenant_loki(loki_server: LokiStandIn) -> None:
    sink = LokiSink(LokiSettings(loki_server.url, tenant="fleet-a"))
    try:
        assert await sink.send([batch(ticks(1))]) == Accepted(1)
    finally:
        await sink.aclose()
    (request,) = loki_server.requests
    assert request["headers"]["X-Scope-OrgID"] == "fleet-a"
    assert request["headers"]["Content-Type"] == "application/json"


async def test_nothing_to_send_sends_nothing(loki_server: LokiStandIn) -> None:
    sink = LokiSink(LokiSettings(loki_server.url))
    try:
        assert await sink.send([batch([])]) == Accepted(0)
        assert await sink.send([]) == Accepted(0)
    finally:
        await sink.aclose()
    assert loki_server.requests == []


async def test_many_refused_entries_are_all_counted() -> None:
    # Loki lists ten of them and ends its long answer with the count
    server = LokiStandIn(LokiLimits(unordered_writes=True))
    await server.start()
    sink = LokiSink(LokiSettings(server.url))
    now = datetime.now(UTC)
    try:
        assert await sink.send([batch([line("newest", at=now)], sequence=1)]) == Accepted(1)
        late = ticks(40, start=now - timedelta(hours=3), workload="app")
        outcome = await sink.send([batch([*late, line("fresh", at=now)], sequence=0)])
    finally:
        await sink.aclose()
        await server.stop()
    assert outcome == Accepted(1, too_old=40)


async def test_a_loki_that_hangs_answers_retry_after_the_timeout(loki_server: LokiStandIn) -> None:
    loki_server.stall_seconds = 5
    sink = LokiSink(LokiSettings(loki_server.url, timeout_seconds=0.3))
    try:
        outcome = await sink.send([batch(ticks(1))])
    finally:
        await sink.aclose()
    assert outcome == Retry(f"loki {loki_server.url}/loki/api/v1/push: timed out")


async def test_https_with_the_ca_that_signed_lokis_certificate(tmp_path: Path) -> None:
    pki = PkiStore.create(tmp_path / "pki")
    pki.issue_server(hostnames=("localhost",), addresses=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert_path, pki.server_key_path)
    server = LokiStandIn(tls=context)
    await server.start()
    trusting = LokiSink(LokiSettings(server.url, ca_file=str(pki.ca_cert_path)))
    other = PkiStore.create(tmp_path / "other")
    untrusting = LokiSink(LokiSettings(server.url, ca_file=str(other.ca_cert_path)))
    try:
        assert await trusting.send([batch(ticks(2))]) == Accepted(2)
        refused = await untrusting.send([batch(ticks(2, start=T0 + timedelta(hours=1)))])
    finally:
        await trusting.aclose()
        await untrusting.aclose()
        await server.stop()
    assert isinstance(refused, Retry)  # a certificate it cannot verify: nothing is sent
    assert "certificate verify failed" in refused.reason
    assert server.lines(device="dev-1") == ["tick-0", "tick-1"]

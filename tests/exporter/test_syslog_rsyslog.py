"""The syslog sink against a real rsyslogd (tests/fixtures/rsyslog.py): what arrives is
checked as rsyslog parsed it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from flotta.backoff import BackoffPolicy
from flotta.exporter.sink import Accepted, Retry
from flotta.exporter.syslog_sink import SyslogSettings, SyslogSink, SyslogTarget
from flotta.pki.store import PkiStore
from tests.exporter.log_batches import T0, batch, line, ticks
from tests.fixtures.rsyslog import RsyslogServer, TlsFiles

FAST = SyslogSettings(reconnect=BackoffPolicy(base=0.05, cap=0.2, jitter=0.5))
SLOWER = SyslogSettings(reconnect=BackoffPolicy(base=0.5, cap=1.0, jitter=0.5))


def tcp(server: RsyslogServer) -> SyslogTarget:
    return SyslogTarget.from_config_map(
        {"Address": f"{server.host}:{server.port}", "Protocol": "tcp"}
    )


async def test_lines_arrive_as_rfc5424_with_the_device_fields_and_time(
    rsyslog_server: RsyslogServer,
) -> None:
    sink = SyslogSink(tcp(rsyslog_server))
    try:
        outcome = await sink.send(
            [
                batch(
                    [
                        line("started", at=T0),
                        line("boom", at=T0 + timedelta(milliseconds=1), stream="stderr"),
                    ],
                    buffer="4f2a",
                    sequence=7,
                )
            ]
        )
        assert outcome == Accepted(2)
    finally:
        await sink.aclose()
    first, second = rsyslog_server.wait_for(2)
    assert first["timereported"] == "2024-05-06T07:08:09.123456Z"
    assert second["timereported"] == "2024-05-06T07:08:09.124456Z"
    assert first["hostname"] == "dev-1"
    assert first["app-name"] == "app"
    assert first["procid"] == "main"
    assert first["msgid"] == "stdout"
    assert (first["syslogfacility"], first["syslogseverity"]) == ("1", "6")  # user.info
    assert (second["syslogfacility"], second["syslogseverity"]) == ("1", "3")  # user.err
    assert first["structured-data"] == (
        '[flotta@32473 namespace="site-a" device="dev-1" workload="app" container="main"'
        ' stream="stdout" batch="4f2a:7" index="0"]'
    )
    assert first["msg"] == "\ufeffstarted"  # the BOM marks the text as UTF-8 (RFC 5424 6.4)
    assert second["msg"] == "\ufeffboom"


async def test_octet_counting_carries_multi_line_and_utf8_text_whole(
    rsyslog_server: RsyslogServer,
) -> None:
    texts = [
        'Traceback (most recent call last):\n  File "app.py", line 1\nValueError: ø',
        "température 21 °C ✓ 温度",
        "x" * 16_000,  # a line at the wire's limit, longer than rsyslog's default 8k
        'quotes " and ] and \\ in the text',
        "",
    ]
    sink = SyslogSink(tcp(rsyslog_server))
    try:
        outcome = await sink.send([batch([line(t) for t in texts])])
    finally:
        await sink.aclose()
    assert outcome == Accepted(len(texts))
    received = rsyslog_server.wait_for(len(texts))
    assert [m["msg"].removeprefix("\ufeff") for m in received] == texts
    assert all(m["msg"].startswith("\ufeff") for m in received)


async def test_order_is_kept_across_batches_and_devices(rsyslog_server: RsyslogServer) -> None:
    sink = SyslogSink(tcp(rsyslog_server))
    batches = [
        batch(ticks(50, start=T0 + timedelta(minutes=n)), device=f"dev-{n % 2}", sequence=n)
        for n in range(6)
    ]
    try:
        for start in range(0, 6, 2):
            assert await sink.send(batches[start : start + 2]) == Accepted(100)
    finally:
        await sink.aclose()
    received = rsyslog_server.wait_for(300)
    expected = [(b.device, b.batch.sequence, x.line) for b in batches for x in b.batch.lines]
    got = [
        (m["hostname"], int(_sd(m, "batch").split(":")[1]), m["msg"].removeprefix("\ufeff"))
        for m in received
    ]
    assert got == expected


async def test_a_receiver_that_is_down_answers_retry_and_gets_the_lines_once_back(
    rsyslog_server: RsyslogServer,
) -> None:
    sink = SyslogSink(tcp(rsyslog_server), SLOWER)
    try:
        assert await sink.send([batch(ticks(3), sequence=0)]) == Accepted(3)
        rsyslog_server.wait_for(3)
        rsyslog_server.stop()
        # the connection it closed is noticed before writing: nothing is written into it
        outcome = await sink.send([batch(ticks(3, start=T0 + timedelta(hours=1)), sequence=1)])
        assert isinstance(outcome, Retry), outcome
        assert outcome.after_seconds is not None
        assert outcome.after_seconds > 0
        assert "127.0.0.1" in outcome.reason
        # before the delay is over, the sink does not even try; after it, it tries and fails
        early = await sink.send([batch(ticks(1))])
        assert isinstance(early, Retry)
        assert "is down" in early.reason
        await asyncio.sleep(outcome.after_seconds)
        again = await sink.send([batch(ticks(3, start=T0 + timedelta(hours=1)), sequence=1)])
        assert isinstance(again, Retry)
        rsyslog_server.start()
        delivered = None
        for _ in range(50):
            delivered = await sink.send(
                [batch(ticks(3, start=T0 + timedelta(hours=1)), sequence=1)]
            )
            if not isinstance(delivered, Retry):
                break
            await asyncio.sleep(delivered.after_seconds or 0.05)
        assert delivered == Accepted(3)
    finally:
        await sink.aclose()
    received = rsyslog_server.wait_for(6)
    assert [m["msg"].removeprefix("\ufeff") for m in received] == [
        "tick-0",
        "tick-1",
        "tick-2",
        "tick-0",
        "tick-1",
        "tick-2",
    ]
    assert [_sd(m, "batch") for m in received] == ["b0:0"] * 3 + ["b0:1"] * 3


async def test_a_receiver_that_was_never_there_answers_retry(tmp_path: Path) -> None:
    from flotta.dev.nats_server import free_port

    sink = SyslogSink(SyslogTarget("127.0.0.1", free_port()), FAST)
    try:
        outcome = await sink.send([batch(ticks(1))])
    finally:
        await sink.aclose()
    assert isinstance(outcome, Retry)
    assert "refused" in outcome.reason.lower()


async def test_tls_with_the_ca_from_the_config_map(tmp_path: Path) -> None:
    pki = PkiStore.create(tmp_path / "pki")
    pki.issue_server(hostnames=("localhost",), addresses=("127.0.0.1",))
    files = TlsFiles(pki.ca_cert_path, pki.server_cert_path, pki.server_key_path)
    server = RsyslogServer(tmp_path / "rsyslog", tls=files)
    server.start()
    try:
        target = SyslogTarget.from_config_map(
            {
                "Address": f"localhost:{server.tls_port}",
                "Protocol": "tls",
                "CA": pki.ca_cert_path.read_text(),
            }
        )
        sink = SyslogSink(target)
        try:
            assert await sink.send([batch([line("over TLS ✓\nsecond line")])]) == Accepted(1)
        finally:
            await sink.aclose()
        (message,) = server.wait_for(1)
        assert message["msg"] == "\ufeffover TLS ✓\nsecond line"
        assert message["hostname"] == "dev-1"

        # a server whose certificate the configured CA did not sign: never delivered
        other = PkiStore.create(tmp_path / "other-pki")
        untrusting = SyslogSink(
            SyslogTarget("localhost", server.tls_port or 0, "tls", other.ca_cert_path.read_text()),
            FAST,
        )
        try:
            outcome = await untrusting.send([batch([line("must not arrive")])])
        finally:
            await untrusting.aclose()
        assert isinstance(outcome, Retry)
        assert "certificate verify failed" in outcome.reason
    finally:
        server.stop()
    assert len(server.received()) == 1


async def test_udp_one_datagram_per_line(rsyslog_server: RsyslogServer) -> None:
    target = SyslogTarget.from_config_map(
        {"Address": f"127.0.0.1:{rsyslog_server.udp_port}", "Protocol": "UDP"}
    )
    sink = SyslogSink(target)
    try:
        assert await sink.send([batch([line("via udp ✓"), line("y" * 5000)])]) == Accepted(2)
    finally:
        await sink.aclose()
    short, long = rsyslog_server.wait_for(2)
    assert short["msg"] == "\ufeffvia udp ✓"
    assert short["inputname"] == "imudp"
    assert 1500 < len(long["rawmsg"].encode()) <= 2048  # cut to the datagram limit


async def test_udp_to_a_closed_port_answers_retry() -> None:
    from tests.fixtures.rsyslog import free_udp_port

    sink = SyslogSink(SyslogTarget("127.0.0.1", free_udp_port(), "udp"), FAST)
    try:
        outcome = await sink.send([batch(ticks(2))])
    finally:
        await sink.aclose()
    assert isinstance(outcome, Retry), outcome  # ICMP port unreachable, noticed at once


def _sd(message: dict[str, str], name: str) -> str:
    sd = message["structured-data"]
    start = sd.index(f' {name}="') + len(name) + 3
    return sd[start : sd.index('"', start)]


pytestmark = pytest.mark.timeout(60)

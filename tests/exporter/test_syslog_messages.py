"""RFC 5424 messages, RFC 6587 framing and the syslog ConfigMap, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotta.exporter import rfc5424
from flotta.exporter.rfc5424 import Facility, Severity
from flotta.exporter.syslog_sink import SyslogConfigError, SyslogTarget, line_messages
from flotta.pki.store import PkiStore
from tests.exporter.log_batches import batch, line


def parse_octet_counted(stream: bytes) -> tuple[list[bytes], bytes]:
    """The receiving side of RFC 6587 3.4.1: complete messages, and the rest."""
    messages: list[bytes] = []
    while stream:
        length, space, rest = stream.partition(b" ")
        if not space:
            break
        assert length.isdigit(), stream[:20]
        assert not length.startswith(b"0"), stream[:20]
        if len(rest) < int(length):
            break
        messages.append(rest[: int(length)])
        stream = rest[int(length) :]
    return messages, stream


def test_a_line_becomes_one_rfc5424_message() -> None:
    (message,) = line_messages(
        batch([line("disk full ✗", stream="stderr")], buffer="4f2a", sequence=9)
    )
    assert message == (
        b"<11>1 2024-05-06T07:08:09.123456Z dev-1 app main stderr "
        b'[flotta@32473 namespace="site-a" device="dev-1" workload="app" container="main" '
        b'stream="stderr" batch="4f2a:9" index="0"] \xef\xbb\xbfdisk full \xe2\x9c\x97'
    )


@pytest.mark.parametrize(
    ("stream", "severity"), [("stdout", Severity.INFO), ("stderr", Severity.ERR), ("system", 5)]
)
def test_severity_follows_the_output(stream: str, severity: int) -> None:
    (message,) = line_messages(batch([line("x", stream=stream)]), facility=Facility.LOCAL3)  # type: ignore[arg-type]
    assert message.startswith(b"<%d>1 " % (Facility.LOCAL3 * 8 + severity))


def test_lines_of_a_batch_are_numbered_and_an_empty_container_is_left_out() -> None:
    messages = line_messages(batch([line("a"), line("b", container="")], sequence=4))
    assert b'batch="b0:4" index="0"' in messages[0]
    assert b'container="main"' in messages[0]
    assert b" app - stdout " in messages[1]  # PROCID is the NILVALUE
    assert b"container=" not in messages[1]
    assert b'batch="b0:4" index="1"' in messages[1]


def test_header_fields_are_cut_and_kept_printable_ascii() -> None:
    assert rfc5424.header_field("", 48) == "-"
    assert rfc5424.header_field("a" * 60, 48) == "a" * 48
    assert rfc5424.header_field("café app", 48) == "caf__app"
    (message,) = line_messages(batch([line("x", workload="w" * 253)]))
    assert b" " + b"w" * 48 + b" main " in message
    assert b'workload="' + b"w" * 253 + b'"' in message  # the full name is in the SD


def test_structured_data_values_are_escaped() -> None:
    sd = rfc5424.structured_data([("x@32473", [("a", 'say "hi" [ok] \\ done')])])
    assert sd == r'[x@32473 a="say \"hi\" [ok\] \\ done"]'
    assert rfc5424.structured_data([]) == "-"
    with pytest.raises(ValueError, match="SD-NAME"):
        line_messages(batch([line("x")]), sd_id="bad id")
    with pytest.raises(ValueError, match="SD-NAME"):
        rfc5424.sd_name("x" * 33)
    assert rfc5424.sd_name("flotta@32473") == "flotta@32473"


def test_timestamps_are_utc_with_microseconds() -> None:
    local = datetime(2024, 5, 6, 9, 8, 9, 5, tzinfo=timezone(timedelta(hours=2)))
    assert rfc5424.timestamp(local) == "2024-05-06T07:08:09.000005Z"
    assert rfc5424.timestamp(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000000Z"


@given(st.lists(st.text(max_size=300), max_size=20))
def test_octet_counting_frames_any_text_whole(texts: list[str]) -> None:
    messages = [
        rfc5424.message(
            facility=Facility.USER,
            severity=Severity.INFO,
            time=datetime(2024, 1, 1, tzinfo=UTC),
            hostname="dev",
            app_name="app",
            procid="",
            msgid="stdout",
            sd="-",
            text=text,
        )
        for text in texts
    ]
    stream = b"".join(rfc5424.octet_counted(m) for m in messages)
    parsed, rest = parse_octet_counted(stream)
    assert parsed == messages
    assert rest == b""
    for message, text in zip(parsed, texts, strict=True):
        body = message.split(b"\xef\xbb\xbf", 1)[1]
        assert body.decode("utf-8") == text.encode("utf-8", "replace").decode("utf-8")


def test_a_datagram_is_cut_at_a_character_boundary() -> None:
    message = "é".encode() * 10  # two bytes each
    assert rfc5424.truncate(message, 5) == "é".encode() * 2
    assert rfc5424.truncate(message, 6) == "é".encode() * 3
    assert rfc5424.truncate(message, 100) == message


# ---- the ConfigMap ---------------------------------------------------------------------


def test_upstream_config_maps_are_understood() -> None:
    assert SyslogTarget.from_config_map(
        {"Address": "syslog.example.com:601", "Protocol": "tcp"}
    ) == SyslogTarget("syslog.example.com", 601, "tcp")
    assert SyslogTarget.from_config_map({"address": "10.0.0.5", "protocol": "UDP"}) == (
        SyslogTarget("10.0.0.5", 514, "udp")
    )
    assert SyslogTarget.from_config_map({"Address": "[fd00::1]:1514"}) == SyslogTarget(
        "fd00::1", 1514, "tcp"
    )
    assert SyslogTarget.from_config_map({"Address": "fd00::1"}).port == 514
    assert SyslogTarget.from_config_map({"Address": "h", "Protocol": "tls"}).port == 6514


def test_tls_takes_a_ca_from_the_config_map(tmp_path: Path) -> None:
    ca = PkiStore.create(tmp_path / "pki").ca_cert_path.read_text()
    target = SyslogTarget.from_config_map({"Address": "h:6514", "Protocol": "tls", "CA": ca})
    assert target.ca_pem == ca.strip()
    assert target.address == "tls://h:6514"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"Address": "h:514", "Protocol": "relp"}, "Protocol 'relp' is not supported"),
        ({"Protocol": "tcp"}, "Address is missing"),
        ({"Address": "h:0"}, "no valid port"),
        ({"Address": "h:http"}, "no valid port"),
        ({"Address": "tcp://h:514"}, "no valid host"),
        ({"Address": "[fd00::1"}, "is not [host]:port"),
        ({"Address": "h", "Protocol": "tcp", "CA": "x"}, "CA is set but Protocol is tcp"),
        ({"Address": "h", "Protocol": "tls", "CA": "not a certificate"}, "CA is not a PEM"),
    ],
)
def test_config_maps_the_exporter_cannot_act_on_are_refused_clearly(
    data: dict[str, str], reason: str
) -> None:
    with pytest.raises(SyslogConfigError, match=reason.replace("[", r"\[")):
        SyslogTarget.from_config_map(data)

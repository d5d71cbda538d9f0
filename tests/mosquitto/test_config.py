"""Rendering of mosquitto.conf and the ACL, the committed example, ``flotta broker render``."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from flotta.mosquitto.acl import AclSettings, render_acl, render_enrolment_acl
from flotta.mosquitto.config import (
    BrokerLimits,
    enrolment_settings,
    production_settings,
    render_config,
)
from flotta.mosquitto.errors import BrokerStartError
from flotta.mosquitto.example import example_files
from flotta.mosquitto.process import MosquittoProcess
from flotta.pki.errors import IdentityError
from flotta.pki.store import PkiStore
from tests.fixtures.brokers import TestBroker
from tests.fixtures.sources import source_path

REPO = Path(__file__).resolve().parents[2]


def _directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_committed_example_is_what_the_renderer_produces() -> None:
    for name, text in example_files().items():
        committed = (REPO / "mosquitto" / name).read_text()
        assert committed == text, (
            f"mosquitto/{name} is stale: run python -m flotta.mosquitto.example mosquitto"
        )


def test_config_requires_client_certificates_and_bounds_resources() -> None:
    settings = production_settings()
    lines = _directives(render_config(settings))
    for required in [
        "allow_anonymous false",
        "require_certificate true",
        "use_identity_as_username true",
        "persistence true",
        "crlfile /etc/mosquitto/flotta/crl.pem",
        "acl_file /etc/mosquitto/flotta/acl",
        "tls_version tlsv1.2",
        f"max_packet_size {BrokerLimits().max_packet_size}",
        f"max_inflight_messages {BrokerLimits().max_inflight_messages}",
        f"max_queued_messages {BrokerLimits().max_queued_messages}",
        "set_tcp_nodelay true",
        "listener 8883 0.0.0.0",
        "listener 8885 0.0.0.0",
    ]:
        assert required in lines, required
    assert "user root" not in lines
    # The listeners come after the global options: the fleet's, whose client id is the
    # certificate's CN, then the control plane's.
    listeners = [i for i, line in enumerate(lines) if line.startswith("listener ")]
    assert [lines[i] for i in listeners] == ["listener 8883 0.0.0.0", "listener 8885 0.0.0.0"]
    assert listeners[0] > lines.index("acl_file /etc/mosquitto/flotta/acl")
    fleet, services = lines[listeners[0] : listeners[1]], lines[listeners[1] :]
    assert "use_username_as_clientid true" in fleet
    assert "use_username_as_clientid true" not in services
    for listener in (fleet, services):
        assert "require_certificate true" in listener
        assert "crlfile /etc/mosquitto/flotta/crl.pem" in listener


def test_the_enrolment_broker_is_a_broker_of_its_own() -> None:
    fleet = production_settings()
    lines = _directives(render_config(enrolment_settings(fleet)))
    assert [line for line in lines if line.startswith("listener ")] == ["listener 8884 0.0.0.0"]
    assert "use_username_as_clientid true" not in lines
    assert "acl_file /etc/mosquitto/flotta/enrolment-acl" in lines
    assert "persistence_location /var/lib/mosquitto-enrolment/" in lines
    acl = _directives(render_enrolment_acl())
    assert "pattern write flotta/enrol/%c/request" in acl
    assert not any("/devices/" in line for line in acl)
    assert not any("/enrol/" in line for line in _directives(render_acl(AclSettings())))


def test_acl_sections_for_named_identities() -> None:
    acl = AclSettings().with_observer("grafana").with_bootstrap_batch("factory")
    lines = _directives(render_acl(acl))
    assert "user observer:grafana" in lines
    assert "user bootstrap:factory" in lines
    # Every device privilege is tied to the certificate CN (%u), never to the client id.
    device_patterns = [line for line in lines if line.startswith("pattern") and "/devices/" in line]
    assert device_patterns
    assert all("%u" in line and "%c" not in line for line in device_patterns)
    assert not any("readwrite flotta/devices/%u/desired" in line for line in lines)
    assert "pattern read flotta/devices/%u/desired" in lines


def test_acl_refuses_names_outside_the_contract() -> None:
    with pytest.raises(IdentityError):
        AclSettings().with_observer("Grafana Prod")
    with pytest.raises(IdentityError):
        AclSettings().with_bootstrap_batch("a/b")


def _broker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = source_path()
    code = "import sys; from flotta.mosquitto.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_broker_render_writes_files_for_a_pki_dir(tmp_path: Path) -> None:
    pki = PkiStore.create(tmp_path / "pki")
    out = tmp_path / "broker"
    result = _broker_cli(
        "render", "--pki-dir", str(pki.root), "--out-dir", str(out), "--port", "18883",
        "--observer", "grafana",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = (out / "mosquitto.conf").read_text()
    assert f"cafile {pki.ca_cert_path.resolve()}" in config
    assert "listener 18883 127.0.0.1" in config
    assert "user observer:grafana" in (out / "acl").read_text()
    assert "NumTickets = 0" in (out / "openssl.cnf").read_text()
    assert (out / "data").is_dir()
    assert "OPENSSL_CONF=" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "out of range"),
        (["--observer", "Bad Name"], "DNS-1123"),
    ],
)
def test_broker_render_errors(tmp_path: Path, args: list[str], message: str) -> None:
    pki = PkiStore.create(tmp_path / "pki")
    result = _broker_cli("render", "--pki-dir", str(pki.root), "--out-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr
    missing = _broker_cli("render", "--pki-dir", str(tmp_path / "no"), "--out-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "not a PKI directory" in missing.stderr


def test_a_broken_configuration_fails_start_with_the_log(tmp_path: Path) -> None:
    config = tmp_path / "mosquitto.conf"
    config.write_text("log_dest stderr\nno_such_option true\n")
    process = MosquittoProcess(config, log_path=tmp_path / "mosquitto.log")
    with pytest.raises(BrokerStartError, match="no_such_option") as caught:
        process.start(timeout=5)
    assert "exited with code" in caught.value.reason
    assert not process.running


def _mqtt_session(
    broker: TestBroker, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> ssl.SSLSocket:
    """A TLS connection with an MQTT 3.1.1 CONNECT answered: by then the broker has sent
    whatever it sends after the handshake (TLS 1.3 tickets come before the CONNACK)."""
    raw = socket.create_connection((broker.host, broker.port), timeout=5)
    connection = context.wrap_socket(raw, session=session)
    client_id = b"dev-tls"
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id
    connection.sendall(
        bytes([0x10, len(variable_header) + len(payload)]) + variable_header + payload
    )
    assert connection.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
    return connection


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_the_broker_issues_no_session_tickets_and_resumes_no_session(
    mosquitto_broker: TestBroker, version: ssl.TLSVersion
) -> None:
    """Every connect shows and has checked the client certificate (flotta.mosquitto.openssl).
    A TLS 1.2 session id may still be cached by OpenSSL: the check is that no ticket comes
    and that a TLS 1.3 session (tickets only) cannot be resumed."""
    creds = mosquitto_broker.device("dev-tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(creds.ca)
    context.load_cert_chain(creds.cert, creds.key)
    context.minimum_version = context.maximum_version = version
    with _mqtt_session(mosquitto_broker, context) as first:
        assert first.version() == version.name.replace("_", ".")
        session = first.session
        assert session is not None
        assert not session.has_ticket
    if version is ssl.TLSVersion.TLSv1_3:
        with _mqtt_session(mosquitto_broker, context, session) as second:
            assert not second.session_reused

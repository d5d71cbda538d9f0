"""Settings, identity files, the desired-state store and the local status: no servers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flotta.agent.config import (
    AgentConfig,
    build_config,
    device_id_from_machine_id,
    load_config,
)
from flotta.agent.desired_store import DesiredStore
from flotta.agent.errors import ConfigError, IdentityError
from flotta.agent.events import EventQueue, new_event
from flotta.agent.identity import CertificateStatus, IdentityStore, renewal_due
from flotta.agent.status_file import LocalStatus, WorkloadLine, read_status, write_status
from flotta.pki.keys import build_csr, csr_to_pem, generate_key
from flotta.pki.store import PkiStore
from flotta.schemas.codec import encode, with_version
from flotta.schemas.topics import DEVICE_ID_PATTERN
from flotta.schemas.wire import DesiredState
from tests.fixtures.sources import source_path

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_documented_ones() -> None:
    config = AgentConfig()
    assert config.state_dir == Path("/var/lib/flotta-agent")
    assert config.broker_host == "localhost"
    assert config.broker_port == 8883
    packaged = load_config(REPO / "agent/packaging/agent.toml")
    assert packaged == AgentConfig()


def test_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'broker_url = "mqtts://broker.example:9883"\nheartbeat_seconds = 30\n'
        'reboot_command = ["/sbin/reboot"]\n'
    )
    config = load_config(path, {"heartbeat_seconds": 15, "device_id": None})
    assert config.broker_port == 9883
    assert config.heartbeat_seconds == 15
    assert config.reboot_command == ("/sbin/reboot",)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nonsense": 1}, "unknown configuration keys: nonsense"),
        ({"broker_url": "mqtt://plain:1883"}, "TLS"),
        ({"device_id": "Not_A_Label"}, "DNS-1123"),
        ({"heartbeat_seconds": "soon"}, "heartbeat_seconds"),
        ({"check_hostname": "yes"}, "true or false"),
        ({"renew_at_fraction": 1.0}, "renew_at_fraction"),
    ],
)
def test_bad_settings_are_refused_clearly(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(values)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(broken)


def test_device_id_from_machine_id_is_a_stable_label(tmp_path: Path) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    config = build_config({"machine_id_path": str(machine_id)})
    derived = config.resolved_device_id()
    assert DEVICE_ID_PATTERN.fullmatch(derived)
    assert derived == device_id_from_machine_id("0123456789abcdef0123456789abcdef")
    assert "0123456789abcdef" not in derived
    with pytest.raises(ConfigError, match="unreadable"):
        build_config({"machine_id_path": str(tmp_path / "none")}).resolved_device_id()


def test_identity_key_is_private_and_certificates_must_match(tmp_path: Path) -> None:
    pki = PkiStore.create(tmp_path / "pki")
    identity = IdentityStore(tmp_path / "identity", "edge-9")
    csr = identity.csr_pem()
    assert stat.S_IMODE(identity.key_path.stat().st_mode) == 0o600
    assert identity.csr_pem() != ""  # the same key is reused
    cert = pki.sign_device_csr(csr.encode(), device_id="edge-9", namespace="default")
    from flotta.pki.keys import certificate_to_pem

    status = identity.store_certificate(
        certificate_to_pem(cert).decode(), pki.ca_cert_path.read_text()
    )
    assert status.common_name == "edge-9"
    for path in (identity.cert_path, identity.ca_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = pki.sign_device_csr(
        csr_to_pem(build_csr(generate_key(), "edge-9")), device_id="edge-9", namespace="default"
    )
    with pytest.raises(IdentityError, match="does not match the device key"):
        identity.store_certificate(certificate_to_pem(other).decode(), pki.ca_cert_path.read_text())
    with pytest.raises(IdentityError, match="cannot be read"):
        identity.store_certificate("garbage", "garbage")
    identity.erase()
    assert not identity.directory.exists()


def test_renewal_is_due_at_the_configured_fraction() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    status = CertificateStatus("edge-1", start, start + timedelta(days=30), 1)
    assert renewal_due(status, start, fraction=2 / 3) == start + timedelta(days=20)


def state(device: str = "edge-1", workloads: int = 0) -> DesiredState:
    return with_version(DesiredState(device_id=device, namespace="default"))


def test_desired_store_round_trip_atomic_and_private(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path)
    assert store.load() is None
    payload = encode(state())
    store.save(payload)
    assert store.path.read_bytes() == payload
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["desired.json"]  # no temporary left
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == state().version
    store.path.write_bytes(b"{ torn")
    assert store.load() is None  # unusable, never a crash
    store.erase()
    assert not store.path.exists()


def test_event_queue_is_bounded_and_counts_drops() -> None:
    queue = EventQueue(2)
    for reason in ("One", "Two", "Three"):
        queue.put(new_event(reason, "x"))
    assert len(queue) == 2
    assert queue.dropped == 1
    first = queue.next_to_send(0.0)
    assert first is not None
    assert first[1].reason == "Two"


def test_status_file_and_the_status_command(tmp_path: Path) -> None:
    status = LocalStatus(
        device_id="edge-1",
        pid=1,
        updated="2026-01-01T00:00:00Z",
        broker="mqtts://b:8883",
        phase="running",
        connected=True,
        applied_version="sha256:abc",
        workloads=[WorkloadLine("web", "Running")],
        telemetry_buffered=12,
        telemetry_dropped=3,
    )
    write_status(tmp_path, status)
    assert read_status(tmp_path) == status
    env = dict(os.environ, PYTHONPATH=source_path())
    command = [sys.executable, "-m", "flotta.cli", "agent", "status", "--state-dir", str(tmp_path)]
    command += ["--device-id", "edge-1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "12 buffered, 3 dropped" in done.stdout
    assert "web" in done.stdout
    assert "Running" in done.stdout
    assert "not enrolled" in done.stdout
    done = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["daemon"]["applied_version"] == "sha256:abc"
    (tmp_path / "status.json").write_text("[]")
    assert read_status(tmp_path) is None

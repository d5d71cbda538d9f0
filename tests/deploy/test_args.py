"""The command lines in the Deployment and StatefulSets are accepted by each component's
real argument parser, and every file they name is on a volume the container mounts."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from flotta.cli import build_parser
from flotta.mosquitto.cluster import CONFIG_FILE, cluster_settings
from flotta.mosquitto.config import BrokerSettings, enrolment_settings
from flotta.mosquitto.files import ENROLMENT_CONFIG_NAME
from flotta.mosquitto.reloader import build_parser as reloader_parser
from flotta.operator.app import OperatorConfig
from flotta.operator.crl_secret import SecretRef
from flotta.operator.policy import ApprovalPolicy
from flotta.schemas.topics import ENROLMENT_PORT, FLEET_PORT, SERVICES_PORT
from tests.deploy.manifests import NAMESPACE, Container, container, find

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the kubelet probes the pod address


def parse(argv: list[str]) -> argparse.Namespace:
    """``flotta ARGS`` through the real parser; a refused argument fails the test."""
    parser = build_parser()
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"flotta {' '.join(argv)} was refused (exit {exc.code})") from None


def assert_mounted(c: Container, path: str | Path) -> None:
    mounts = c.mounts()
    target = PurePosixPath(str(path))
    assert any(target.is_relative_to(PurePosixPath(m)) for m in mounts), (
        f"{c.workload}/{c.name}: {path} is on no volume ({sorted(mounts)})"
    )


def test_operator_arguments() -> None:
    c = container("flotta-operator", "operator")
    assert "command" not in c.spec, "the image's entry point is flotta"
    args = parse(c.argv)
    assert args.component == "operator"
    assert args.operator_command == "run"
    assert args.health_host == ALL_INTERFACES
    ports = {p["containerPort"] for p in c.spec["ports"]}
    assert args.health_port in ports
    assert args.kubeconfig is None  # in-cluster service account
    assert not args.no_leader_election
    assert args.lease_namespace == NAMESPACE
    assert args.enrolment_namespace == NAMESPACE
    ApprovalPolicy.parse(args.auto_approve)
    assert_mounted(c, args.pki_dir)
    # The services listener (client ids of its choosing), and the enrolment broker.
    assert args.broker_port == SERVICES_PORT
    assert args.broker_host == f"flotta-broker-internal.{NAMESPACE}.svc"
    assert args.enrolment_port == ENROLMENT_PORT
    assert args.enrolment_host == f"flotta-broker.{NAMESPACE}.svc"
    for host, port in (
        (args.broker_host, args.broker_port),
        (args.enrolment_host, args.enrolment_port),
    ):
        service = find("Service", host.split(".")[0])
        assert port in {p["port"] for p in service["spec"]["ports"]}
    secret = SecretRef.parse(args.crl_secret)
    assert secret.namespace == NAMESPACE
    assert args.broker_pid_file == []
    # The Role names the Lease and the Secret the operator uses.
    role = find("Role", "flotta-operator")
    names = {n for rule in role["rules"] for n in rule.get("resourceNames", [])}
    assert OperatorConfig.lease_name in names
    assert secret.name in names


def test_operator_init_container_fills_the_pki_dir_it_reads() -> None:
    init = container("flotta-operator", "pki")
    operator = container("flotta-operator", "operator")
    pki_dir = parse(operator.argv).pki_dir
    script = init.spec["args"][0]
    assert f"dst={pki_dir}" in script
    assert_mounted(init, pki_dir)
    shared = {
        m["name"] for m in init.spec["volumeMounts"] if pki_dir.is_relative_to(m["mountPath"])
    } & {m["name"] for m in operator.spec["volumeMounts"]}
    assert shared == {"state"}


def test_bridge_arguments() -> None:
    c = container("flotta-bridge", "bridge")
    args = parse(c.argv)
    assert args.component == "bridge"
    assert args.client_id == "flotta-bridge-0", "the client id is the pod name"
    assert args.nats_url.startswith(("nats://", "tls://"))
    assert args.health_host == ALL_INTERFACES
    assert args.health_port in {p["containerPort"] for p in c.spec["ports"]}
    assert args.kubeconfig is None
    for path in (args.ca, args.cert, args.key):
        assert_mounted(c, path)
    assert args.mqtt_port == SERVICES_PORT  # client ids of its choosing: one per replica
    service = find("Service", args.mqtt_host.split(".")[0])
    assert args.mqtt_port in {p["port"] for p in service["spec"]["ports"]}


def test_reloader_arguments() -> None:
    c = container("flotta-broker", "crl-reloader")
    assert c.argv[:3] == ["python", "-m", "flotta.mosquitto.reloader"]
    try:
        args = reloader_parser().parse_args(c.argv[3:])
    except SystemExit as exc:
        raise AssertionError(f"reloader arguments refused (exit {exc.code})") from None
    settings = cluster_settings()
    assert settings.crlfile in args.watch
    assert settings.certfile in args.watch
    for path in args.watch:
        assert_mounted(c, path)
    assert args.process == "mosquitto"


def broker_container(name: str, config: Path, settings: BrokerSettings) -> Container:
    """The container runs ``mosquitto -c CONFIG`` with every file the config names mounted."""
    c = container("flotta-broker", name)
    binary, flag, argument = c.argv
    assert binary.endswith("/mosquitto")
    assert (flag, argument) == ("-c", str(config))
    for path in (
        config,
        settings.acl_file,
        settings.cafile,
        settings.certfile,
        settings.keyfile,
        settings.crlfile,
        settings.persistence_dir,
    ):
        assert_mounted(c, path)
    return c


def test_mosquitto_command_reads_the_mounted_cluster_config() -> None:
    settings = cluster_settings()
    c = broker_container("mosquitto", CONFIG_FILE, settings)
    data = next(
        m for m in c.spec["volumeMounts"] if m["mountPath"] == str(settings.persistence_dir)
    )
    assert data["name"] == "data"
    assert not data.get("readOnly", False)
    assert {8883, 8885} <= {p["containerPort"] for p in c.spec["ports"]}
    assert (settings.port, settings.services_port) == (FLEET_PORT, SERVICES_PORT)


def test_the_enrolment_broker_runs_beside_it_with_its_own_config_and_store() -> None:
    settings = enrolment_settings(cluster_settings())
    c = broker_container(
        "mosquitto-enrolment", CONFIG_FILE.with_name(ENROLMENT_CONFIG_NAME), settings
    )
    assert settings.port in {p["containerPort"] for p in c.spec["ports"]}
    assert settings.port == ENROLMENT_PORT


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_init_script_leaves_a_pki_dir_the_operator_accepts(tmp_path: Path) -> None:
    """The init container's script, run on a real PKI: the store opens it, the CA key has
    the mode it demands, and a second run (the other replica) replaces the files."""
    from flotta.pki.identities import parse_identity
    from flotta.pki.store import PkiStore
    from flotta.schemas.topics import OPERATOR_IDENTITY

    source = PkiStore.create(tmp_path / "made")
    source.issue_client(parse_identity(OPERATOR_IDENTITY))
    secret = tmp_path / "secret"  # what the Secret volume holds: flat, group-readable
    secret.mkdir()
    for name, path in {
        "ca.crt": source.ca_cert_path,
        "ca.key": source.ca_key_path,
        "internal-operator.crt": source.clients_dir / "internal-operator.crt",
        "internal-operator.key": source.clients_dir / "internal-operator.key",
        "operator-sealing.key": None,
    }.items():
        (secret / name).write_bytes(path.read_bytes() if path else b"k" * 32)
        (secret / name).chmod(0o440)
    state = tmp_path / "state"
    script = container("flotta-operator", "pki").spec["args"][0]
    script = script.replace("/etc/flotta/operator-pki", str(secret))
    script = script.replace("/var/lib/flotta", str(state))
    for _ in range(2):
        subprocess.run(
            ["sh", "-c", script],
            env={"HOSTNAME": "flotta-operator-x", "PATH": "/usr/bin:/bin"},
            check=True,
            timeout=30,
        )
    store = PkiStore.open(state / "pki")
    assert store.authority().certificate == source.authority().certificate
    assert (store.ca_key_path.stat().st_mode & 0o777) == 0o600
    assert (store.root / "operator-sealing.key").read_bytes() == b"k" * 32
    assert (store.clients_dir / "internal-operator.key").stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in store.root.rglob("*.tmp")) == []

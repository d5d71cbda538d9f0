"""Bring the whole system up on loopback, in order, and take it down again.

Order: fleet PKI -> local Kubernetes API (CRDs, sample resources) -> Mosquitto -> nats-server
-> operator -> bridge -> Prometheus, Loki, rsyslogd and the exporter (telemetry from
JetStream into them) -> the real agent (with its own isolated Podman) -> simulated devices.
Every process is recorded (PID and command line) in the state dir as soon as it starts, so a
failure half-way, a Ctrl-C or ``flotta dev down`` from another shell stops exactly what was
started. State (PKI, Kubernetes objects, broker store, JetStream, agent identity) stays in the
state dir, so a second ``up`` resumes the same fleet on the same ports.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flotta.bridge.share_group import GROUP_ENV, new_group
from flotta.child_process import same_code_environment
from flotta.dev.stack import processes
from flotta.dev.stack.layout import LOOPBACK, Ports, StackLayout, write_private

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[4]
SAMPLE_NAMESPACE = "default"
SIMULATOR_BATCH = "simulator"
AGENT_BATCH = "local-agent"
OBSERVER = "dev"
SAMPLE_SET = "shop-floor"
LOCAL_AGENT_ID = "edge-local-0001"
EXPORTER = "exporter"  # its client certificate's identity: observer:exporter


class StackError(Exception):
    """The stack could not be brought up; the message says which step and why."""


@dataclass
class UpOptions:
    devices: int = 50
    real_agent: bool = True
    telemetry: bool = True  # Prometheus, Loki and the exporter
    heartbeat_seconds: int = 10
    progress: Callable[[str], None] = field(default=print)


def crd_dir() -> Path:
    """The generated CRDs: in the source tree, or packaged with the wheel."""
    for candidate in (REPO_ROOT / "deploy" / "crds", Path(__file__).resolve().parents[1] / "crds"):
        if candidate.is_dir():
            return candidate
    raise StackError("cannot find the CRD manifests (deploy/crds)")


def samples_dir() -> Path | None:
    candidate = REPO_ROOT / "deploy" / "samples"
    return candidate if candidate.is_dir() else None


def flotta_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flotta.cli", *args]


def agent_command(config: Path) -> list[str]:
    """The agent as a device's systemd unit runs it (``agent/packaging/flotta-agent.service``):
    its own entry point, without the other components' command-line modules, so the stack's
    agent costs what a device's does."""
    return [sys.executable, "-m", "flotta.agent", "run", "--config", str(config)]


# The unit's Environment= (MALLOC_ARENA_MAX caps glibc's per-thread heaps: part of the budget).
AGENT_ENVIRONMENT = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "MALLOC_ARENA_MAX": "2",
}


def agent_config(
    *,
    state_dir: Path,
    files_root: Path,
    broker_port: int,
    enrolment_port: int,
    ca_file: Path,
    bootstrap_cert: Path,
    bootstrap_key: Path,
    podman_url: str,
) -> str:
    """The real agent's configuration for the local stack (see agent/packaging/agent.toml)."""
    return f"""# Written by flotta dev up: the real agent of the local stack.
device_id = "{LOCAL_AGENT_ID}"
state_dir = "{state_dir}"
files_root = "{files_root}"
broker_url = "mqtts://{LOOPBACK}:{broker_port}"
enrolment_url = "mqtts://{LOOPBACK}:{enrolment_port}"
ca_cert = "{ca_file}"
bootstrap_cert = "{bootstrap_cert}"
bootstrap_key = "{bootstrap_key}"
target_namespace = "{SAMPLE_NAMESPACE}"
target_set = "{SAMPLE_SET}"
podman_socket = "{podman_url}"
heartbeat_seconds = 10
# a batch the broker lost (restart, crash) comes back after 30 s rather than 2 min
telemetry_resend_seconds = 30.0
reboot_command = ["true"]
"""


def wait_for_port(port: int, *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{what} did not open port {port} within {timeout:.0f} s")


def wait_for_file(path: Path, *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise StackError(f"{what} did not write {path} within {timeout:.0f} s")
        time.sleep(0.1)


class Stack:
    def __init__(self, layout: StackLayout, options: UpOptions) -> None:
        self.layout = layout
        self.options = options
        self.records: list[processes.ProcessRecord] = []
        self.telemetry_started = False  # Prometheus, Loki and the exporter
        self.syslog_started = False
        self._children: list[subprocess.Popen[bytes]] = []

    # ---- bookkeeping -----------------------------------------------------------------------

    def running(self) -> list[processes.ProcessRecord]:
        return [r for r in processes.load(self.layout.processes) if r.is_running()]

    def _start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        pid_file: Path | None = None,
    ) -> None:
        child, record = processes.start(
            name,
            argv,
            log_path=self.layout.logs / f"{name}.log",
            env=same_code_environment(env),
            extra_env=env,
            pid_file=pid_file,
        )
        self._children.append(child)
        self.records.append(record)
        processes.save(self.layout.processes, self.records)

    def start_supervisor(self) -> None:
        """Leave ``flotta dev supervise`` behind (recorded last: ``down`` stops it first)."""
        from flotta.dev.stack.supervision import SUPERVISOR

        self._start(
            SUPERVISOR, flotta_command("dev", "supervise", "--state-dir", str(self.layout.root))
        )

    def stop_all(self) -> list[str]:
        stopped = [record.name for record in processes.stop_recorded(self.layout.processes)]
        for child in self._children:  # reap the ones this object started
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children.clear()
        return stopped

    def _check_alive(self, name: str) -> None:
        record = next(r for r in self.records if r.name == name)
        if not record.is_running():
            tail = Path(record.log).read_text(errors="replace")[-2000:]
            raise StackError(f"{name} exited during start-up; last lines of {record.log}:\n{tail}")

    # ---- steps -----------------------------------------------------------------------------

    def up(self) -> Ports:
        if self.running():
            raise StackError(
                f"the stack in {self.layout.root} is already running; "
                f"stop it with: flotta dev down --state-dir {self.layout.root}"
            )
        self.layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.layout.root.chmod(0o700)  # keys, the admin kubeconfig, Secrets: the owner's alone
        ports = self.layout.ports()
        say = self.options.progress
        say(f"state dir {self.layout.root.resolve()}")
        self.ensure_pki()
        say("fleet PKI ready")
        self.start_kube_api(ports)
        say(f"local Kubernetes API on https://{LOOPBACK}:{ports.kube}")
        self.apply_resources()
        say("CRDs and sample resources applied")
        self.start_mosquitto(ports)
        say(f"Mosquitto (mutual TLS) on {LOOPBACK}:{ports.mqtt}")
        self.start_nats(ports)
        say(f"nats-server (JetStream) on {LOOPBACK}:{ports.nats}")
        self.start_operator(ports)
        say("operator started")
        self.start_bridge(ports)
        say("bridge started")
        if self.options.telemetry:
            self.start_telemetry(ports)
        if self.options.real_agent:
            self.start_agent(ports)
            say("device agent started (real Podman)")
        if self.options.devices:
            self.start_simulator(ports)
            say(f"simulator started: {self.options.devices} devices enrolling")
        self.layout.write_endpoints(ports)
        return ports

    def ensure_pki(self) -> None:
        from flotta.pki.identities import (
            bootstrap_identity,
            file_stem,
            observer_identity,
            parse_identity,
        )
        from flotta.pki.store import PkiStore
        from flotta.schemas.topics import BRIDGE_IDENTITY, OPERATOR_IDENTITY

        identities = (
            parse_identity(OPERATOR_IDENTITY),
            parse_identity(BRIDGE_IDENTITY),
            observer_identity(OBSERVER),
            observer_identity(EXPORTER),
            bootstrap_identity(SIMULATOR_BATCH),
            bootstrap_identity(AGENT_BATCH),
        )
        if (self.layout.pki / "ca.crt").exists():
            store = PkiStore.open(self.layout.pki)
        else:
            store = PkiStore.create(self.layout.pki, ca_name="Flotta development CA")
            store.issue_server(hostnames=("localhost",), addresses=(LOOPBACK, "::1"))
        for identity in identities:  # a state dir from before an identity gets it now
            if not (store.clients_dir / f"{file_stem(identity)}.crt").exists():
                store.issue_client(identity)

    def start_kube_api(self, ports: Ports) -> None:
        self._start(
            "kube-api",
            flotta_command(
                "dev", "kube-api", "--state-dir", str(self.layout.kube), "--port", str(ports.kube)
            ),
        )
        wait_for_port(ports.kube, what="the local Kubernetes API")
        wait_for_file(self.layout.kube / "kubeconfig", what="the local Kubernetes API")
        self._check_alive("kube-api")
        write_private(self.layout.kubeconfig, (self.layout.kube / "kubeconfig").read_bytes())

    def api_client(self) -> ApiClient:
        from kubernetes import config

        api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.layout.kubeconfig)
        )
        return api

    def apply_resources(self) -> None:
        from flotta.dev.stack import resources

        crds = resources.load_documents(sorted(crd_dir().glob("*.yaml")))
        samples = samples_dir()
        objects = []
        if samples is not None:
            objects = [
                doc
                for doc in resources.load_documents(sorted(samples.glob("*.yaml")))
                if doc["kind"] in ("EdgeDeviceSet", "EdgeWorkload")
            ]
        api = self.api_client()
        try:
            resources.apply(api, crds, objects)
            resources.ensure_namespace(api, "flotta")
        finally:
            api.close()  # type: ignore[no-untyped-call]

    def start_mosquitto(
        self, ports: Ports, *, only: tuple[str, ...] = ("mosquitto", "mosquitto-enrolment")
    ) -> None:
        """The fleet broker and the enrolment broker (``only``: those of them)."""
        from flotta.mosquitto.acl import AclSettings
        from flotta.mosquitto.config import enrolment_settings
        from flotta.mosquitto.files import (
            ENROLMENT_CONFIG_NAME,
            settings_for_pki,
            write_broker_files,
        )
        from flotta.mosquitto.openssl import openssl_environment
        from flotta.mosquitto.process import find_mosquitto

        settings = settings_for_pki(
            self.layout.pki,
            self.layout.mosquitto,
            port=ports.mqtt,
            services_port=ports.mqtt_services,
            bind_address=LOOPBACK,
            run_as_root=True,
        )
        acl = (
            AclSettings()
            .with_observer(OBSERVER)
            .with_bootstrap_batch(SIMULATOR_BATCH)
            .with_bootstrap_batch(AGENT_BATCH)
        )
        files = write_broker_files(settings, acl, self.layout.mosquitto / "mosquitto.conf")
        enrolment = write_broker_files(
            enrolment_settings(settings, port=ports.mqtt_enrolment),
            acl,
            self.layout.mosquitto / ENROLMENT_CONFIG_NAME,
        )
        for name, config_path, port in (
            ("mosquitto", files.config_path, ports.mqtt),
            ("mosquitto-enrolment", enrolment.config_path, ports.mqtt_enrolment),
        ):
            if name not in only:
                continue
            self._start(
                name,
                [find_mosquitto(), "-c", str(config_path)],
                env=openssl_environment(files.openssl_config_path),
                pid_file=self.layout.mosquitto / f"{name}.pid",
            )
            wait_for_port(port, what=f"Mosquitto ({name})")
            self._check_alive(name)

    def start_nats(self, ports: Ports) -> None:
        from flotta.dev.nats_config import (
            NatsTls,
            bridge_user,
            exporter_user,
            observer_user,
            render_nats_config,
        )
        from flotta.dev.nats_server import find_nats_server
        from flotta.pki.identities import observer_identity
        from flotta.schemas.topics import BRIDGE_IDENTITY

        store = self.layout.nats / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        pki = self.layout.pki.resolve()
        config = self.layout.nats / "nats.conf"
        config.write_text(
            render_nats_config(
                host=LOOPBACK,
                port=ports.nats,
                store_dir=store.resolve(),
                tls=NatsTls(pki / "server.crt", pki / "server.key", pki / "ca.crt"),
                users=[
                    bridge_user(BRIDGE_IDENTITY),
                    observer_user(observer_identity(OBSERVER).common_name),
                    exporter_user(observer_identity(EXPORTER).common_name),
                ],
            )
        )
        self._start("nats-server", [find_nats_server(), "-c", str(config)])
        wait_for_port(ports.nats, what="nats-server")
        self._check_alive("nats-server")

    def start_operator(self, ports: Ports) -> None:
        self._start(
            "operator",
            flotta_command(
                "operator",
                "run",
                "--kubeconfig",
                str(self.layout.kubeconfig),
                "--pki-dir",
                str(self.layout.pki),
                "--broker-port",
                str(ports.mqtt_services),
                "--enrolment-port",
                str(ports.mqtt_enrolment),
                "--auto-approve",
                SAMPLE_NAMESPACE,
                "--health-port",
                str(ports.operator_health),
                "--broker-pid-file",
                str(self.layout.mosquitto / "mosquitto.pid"),
                "--broker-pid-file",
                str(self.layout.mosquitto / "mosquitto-enrolment.pid"),
            ),
        )
        wait_for_port(ports.operator_health, what="the operator")
        self._check_alive("operator")

    def start_bridge(self, ports: Ports, *, replica: int = 0, health_port: int = 0) -> None:
        """Bridge replica 0 is the stack's own; more replicas join its shared subscriptions
        (each with its own client id, so its own session, and ``health_port``)."""
        clients = self.layout.pki / "clients"
        name = "bridge" if replica == 0 else f"bridge-{replica}"
        group = self.layout.bridge_group
        if not group.exists():
            write_private(group, new_group().encode())
        health = ports.bridge_health if replica == 0 else health_port
        self._start(
            name,
            flotta_command(
                "bridge",
                "--mqtt-port",
                str(ports.mqtt_services),
                "--ca",
                str(self.layout.pki / "ca.crt"),
                "--cert",
                str(clients / "internal-bridge.crt"),
                "--key",
                str(clients / "internal-bridge.key"),
                "--client-id",
                f"flotta-bridge-{replica}",
                "--nats-url",
                f"tls://{LOOPBACK}:{ports.nats}",
                "--kubeconfig",
                str(self.layout.kubeconfig),
                "--health-port",
                str(health),
                "--log-format",
                "text",
            ),
            env={GROUP_ENV: group.read_text().strip()},
        )
        wait_for_port(health, what=f"the bridge ({name})")
        self._check_alive(name)

    def start_telemetry(self, ports: Ports) -> None:
        """Prometheus (remote-write receiver), Loki and the exporter that feeds them from
        JetStream; without a ``prometheus`` binary, none of them."""
        from flotta.dev.prometheus import PrometheusUnavailableError, find_prometheus

        say = self.options.progress
        try:
            binary = find_prometheus()
        except PrometheusUnavailableError as exc:
            say(f"no Prometheus, Loki or exporter: {exc}")
            return
        self.start_prometheus(ports, binary)
        say(f"Prometheus (remote-write receiver) on http://{LOOPBACK}:{ports.prometheus}")
        self.start_loki(ports)
        say(f"Loki API (stand-in) on http://{LOOPBACK}:{ports.loki}")
        if self.start_syslog(ports):
            say(f"rsyslogd (RFC 5424 over TCP) on {LOOPBACK}:{ports.syslog}")
        self.start_exporter(ports)
        say("exporter started: device metrics to Prometheus, logs to Loki")
        self.telemetry_started = True

    def start_prometheus(self, ports: Ports, binary: str) -> None:
        from flotta.dev.prometheus import config_text, prometheus_argv

        workdir = self.layout.prometheus.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(
            config_text({"flotta-exporter": f"{LOOPBACK}:{ports.exporter_health}"})
        )
        self._start(
            "prometheus", prometheus_argv(binary, workdir, host=LOOPBACK, port=ports.prometheus)
        )
        wait_for_port(ports.prometheus, what="Prometheus", timeout=60)
        self._check_alive("prometheus")

    def start_loki(self, ports: Ports) -> None:
        self._start(
            "loki",
            flotta_command(
                "dev", "loki", "--port", str(ports.loki), "--state-dir", str(self.layout.loki)
            ),
        )
        wait_for_port(ports.loki, what="Loki", timeout=60)
        self._check_alive("loki")

    def start_syslog(self, ports: Ports) -> bool:
        """rsyslogd, and the sample set's ``syslog-server`` ConfigMap pointing at it; False
        (and the exporter retries the sample's syslog lines) without rsyslogd."""
        from flotta.dev.stack import resources
        from flotta.dev.syslog import (
            CONFIG_MAP,
            MESSAGES,
            config_map_data,
            find_rsyslogd,
            rsyslog_argv,
            rsyslog_config,
        )

        binary = find_rsyslogd()
        if binary is None:
            self.options.progress("no syslog server: rsyslogd is not installed")
            return False
        workdir = self.layout.syslog.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rsyslog.conf").write_text(
            rsyslog_config(workdir, host=LOOPBACK, port=ports.syslog)
        )
        (workdir / "rsyslogd.pid").unlink(missing_ok=True)  # left by a killed one
        (workdir / MESSAGES).touch()  # there to read before the first message
        self._start("rsyslogd", rsyslog_argv(binary, workdir))
        wait_for_port(ports.syslog, what="rsyslogd")
        self._check_alive("rsyslogd")
        api = self.api_client()
        try:
            resources.apply_config_map(
                api, SAMPLE_NAMESPACE, CONFIG_MAP, config_map_data(host=LOOPBACK, port=ports.syslog)
            )
        finally:
            api.close()  # type: ignore[no-untyped-call]
        self.syslog_started = True
        return True

    def start_exporter(self, ports: Ports) -> None:
        from flotta.pki.identities import file_stem, observer_identity

        clients = self.layout.pki.resolve() / "clients"
        stem = file_stem(observer_identity(EXPORTER))
        self._start(
            "exporter",
            flotta_command(
                "exporter",
                "run",
                "--nats-url",
                f"tls://{LOOPBACK}:{ports.nats}",
                "--nats-ca",
                str(self.layout.pki.resolve() / "ca.crt"),
                "--nats-cert",
                str(clients / f"{stem}.crt"),
                "--nats-key",
                str(clients / f"{stem}.key"),
                "--client-name",
                "flotta-exporter-0",
                "--prometheus-url",
                f"http://{LOOPBACK}:{ports.prometheus}/api/v1/write",
                "--kubeconfig",
                str(self.layout.kubeconfig.resolve()),
                "--loki-url",
                f"http://{LOOPBACK}:{ports.loki}",
                "--health-port",
                str(ports.exporter_health),
                "--log-format",
                "text",
            ),
        )
        wait_for_port(ports.exporter_health, what="the exporter", timeout=60)
        self._check_alive("exporter")

    def start_agent(self, ports: Ports) -> None:
        from flotta.dev.podman import unavailable_reason

        reason = unavailable_reason()
        if reason is not None:
            self.options.progress(f"no real agent: Podman cannot run here ({reason})")
            return
        podman_dir = self.layout.podman.resolve()
        self._start("podman", flotta_command("dev", "podman", "--state-dir", str(podman_dir)))
        wait_for_file(podman_dir / "podman.sock", what="Podman", timeout=120)
        self._check_alive("podman")
        config = self.layout.agent / "agent.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        clients = self.layout.pki.resolve() / "clients"
        config.write_text(
            agent_config(
                state_dir=self.layout.agent.resolve() / "state",
                files_root=self.layout.agent.resolve() / "files",
                broker_port=ports.mqtt,
                enrolment_port=ports.mqtt_enrolment,
                ca_file=self.layout.pki.resolve() / "ca.crt",
                bootstrap_cert=clients / f"bootstrap-{AGENT_BATCH}.crt",
                bootstrap_key=clients / f"bootstrap-{AGENT_BATCH}.key",
                podman_url=f"unix://{podman_dir / 'podman.sock'}",
            )
        )
        self._start("agent", agent_command(config), env=AGENT_ENVIRONMENT)
        time.sleep(0.5)
        self._check_alive("agent")

    def start_simulator(self, ports: Ports) -> None:
        clients = self.layout.pki / "clients"
        self._start(
            "simulator",
            flotta_command(
                "dev",
                "simulate",
                "--state-dir",
                str(self.layout.simulator),
                "--devices",
                str(self.options.devices),
                "--mqtt-port",
                str(ports.mqtt),
                "--enrolment-port",
                str(ports.mqtt_enrolment),
                "--ca",
                str(self.layout.pki / "ca.crt"),
                "--bootstrap-cert",
                str(clients / f"bootstrap-{SIMULATOR_BATCH}.crt"),
                "--bootstrap-key",
                str(clients / f"bootstrap-{SIMULATOR_BATCH}.key"),
                "--namespace",
                SAMPLE_NAMESPACE,
                "--set",
                SAMPLE_SET,
            ),
        )
        time.sleep(0.5)
        self._check_alive("simulator")

"""Fleet-scale benchmark: the whole control plane on loopback and a simulated fleet with real
TLS MQTT connections (one key and certificate per device).

    .venv/bin/python benchmarks/fleet_bench.py --devices 1000,2500,5000,10000 \
        [--fanout] [--writes] [--storm] [--write-window 60] [--processes 2]

Without any of --fanout/--writes/--storm all three run. For every fleet size a fresh stack is
started: fleet PKI, local Kubernetes API (``flotta dev kube-api``), Mosquitto (persistence on),
nats-server (JetStream), operator, bridge. The benchmark creates the EdgeWorkload and N
EdgeDevices (heartbeat every 10 s) through the API, issues the device certificates from the PKI,
starts ``flotta dev simulate --processes P --report FILE``, then measures:

- fan-out: once the EdgeDevice writes the fleet's enrolment left queued are done (the bridge's
  visible changes, the operator's device writes; at most --drain seconds), patch the
  EdgeWorkload; seconds from just before the patch until the last device's status reporting the
  new version was acknowledged by the broker, by the device's own clock (``fanout_seconds``,
  the floor's definition too) (goal 3 s at 10,000), with a timeline of the operator's publishes
  and the acknowledgements;
- writes: N devices heartbeating every 10 s with nothing changing, for --write-window seconds;
  Kubernetes writes per second (the local API's cluster-wide resourceVersion, bumped by every
  write) against heartbeats per second (the bridge's count of status messages) (goal: at most
  1 %);
- storm: once the EdgeDevice writes the phases before left queued are done (as for the fan-out;
  since 2026-12-03 20:20, before which a storm ran into a varying part of them), stop and
  restart Mosquitto (persistence kept); seconds until every device is online again (a birth
  after the restart) and converged (its applied version is the desired one) (goal 30 s at
  10,000);

What the devices did comes from the simulator's own reports (``flotta.dev.simulator.report``):
a device is online once the broker acknowledged its birth, and has acknowledged a version once
the broker acknowledged the status that reports it. (Until 2026-12-03 16:00 an observer MQTT
subscription to every device's status and connection topics in this process saw them, and took
a seventh of the 2 cores during a fan-out, 0.28 cores.)
- footprint: CPU seconds and resident memory of the simulator, broker, operator, bridge and
  API during each phase (per 1,000 simulated devices for the simulator).

- floor: right after the fleet run, the device tier alone (``simulator_bench.py``: Mosquitto,
  the same simulated devices and a bare publisher in its own process in the operator's place,
  no Kubernetes API, operator or bridge); the fan-out and the storm as ratios to it (goals: at
  most 1.25x and 1.15x). Both are timed alike in the two runs, from the simulator's report:
  the fan-out from the change (the patch; the floor's first publish) to the last acknowledged
  status with the new version, the storm from the broker listening again to the last birth.
  The cores' speed swings more than 2x between runs, so these ratios are the goals; the
  seconds are context. ``--no-floor`` skips it.
- ``--compare-bridge TREE``: a second bridge from another checkout of the repository runs next
  to this tree's, in its own shared-subscription group so that it gets every device message
  too; both appear in the CPU figures (``bridge``, ``bridge-compare``), the storm's CPU per
  reconnect among them: a change to the bridge measured side by side in the same run.

The results go on top of benchmarks/results/fleet.md (with the date and the machine; earlier
runs stay below).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import itertools
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: where the source folders are
from tests.fixtures.sources import SOURCE_DIRS, source_path  # noqa: E402

sys.path[1:1] = [str(ROOT / folder) for folder in SOURCE_DIRS]

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from history import earlier_runs, record  # noqa: E402 (benchmarks/history.py)
from kubernetes import client, config  # noqa: E402

from flotta.dev.nats_server import NatsServer, free_port  # noqa: E402
from flotta.dev.simulator.provision import provision  # noqa: E402
from flotta.dev.simulator.report import (  # noqa: E402
    BUCKETS,
    FleetReport,
    read_reports,
    report_path,
)
from flotta.dev.simulator.shards import device_ids  # noqa: E402
from flotta.dev.stack import resources  # noqa: E402
from flotta.mosquitto.acl import AclSettings  # noqa: E402
from flotta.mosquitto.config import enrolment_settings  # noqa: E402
from flotta.mosquitto.files import (  # noqa: E402
    ENROLMENT_CONFIG_NAME,
    settings_for_pki,
    write_broker_files,
)
from flotta.mosquitto.process import MosquittoProcess  # noqa: E402
from flotta.pki.identities import parse_identity  # noqa: E402
from flotta.pki.store import PkiStore  # noqa: E402
from flotta.schemas.topics import BRIDGE_IDENTITY, OPERATOR_IDENTITY  # noqa: E402

LOOPBACK = "127.0.0.1"
GROUP = "management.project-flotta.io"
VERSION = "v1alpha1"
NAMESPACE = "default"
PREFIX = "sim"
HEARTBEAT = 10
RESULTS = ROOT / "benchmarks" / "results" / "fleet.md"
ENV = {**os.environ, "PYTHONPATH": source_path() + os.pathsep + str(ROOT)}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def flotta(*args: str) -> list[str]:
    return [sys.executable, "-m", "flotta.cli", *args]


# ---- process accounting --------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    out = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += _descendants(int(child))
    return out


OWN = -1  # in ``Usage.pids``: this process alone, not its children


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (``OWN``: this process only)."""
    total = 0.0
    for p in [os.getpid()] if pid == OWN else _descendants(pid):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(") ", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def listen_overflows() -> int:
    """The kernel's count (since boot, every socket) of connections dropped because a listen
    queue was full: the client's SYN is then resent only after 1, 3, 7 ... seconds."""
    with contextlib.suppress(OSError, ValueError):
        lines = Path("/proc/net/netstat").read_text().splitlines()
        for names, values in itertools.pairwise(lines):
            if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
                fields = dict(zip(names.split()[1:], values.split()[1:], strict=True))
                return int(fields["ListenOverflows"])
    return 0


def rss_mib(pid: int) -> float:
    total = 0
    for p in [os.getpid()] if pid == OWN else _descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


@dataclass
class Usage:
    """CPU and memory of the stack's processes over one phase."""

    pids: dict[str, int]
    start_cpu: dict[str, float] = field(default_factory=dict)
    started: float = 0.0

    def begin(self) -> None:
        self.started = time.monotonic()
        self.start_cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def end(self) -> dict[str, tuple[float, float]]:
        """name -> (average cores used, RSS MiB now)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            name: ((cpu_seconds(pid) - self.start_cpu.get(name, 0.0)) / elapsed, rss_mib(pid))
            for name, pid in self.pids.items()
        }


# ---- the stack -----------------------------------------------------------------------------


def _metric(port: int, name: str) -> float:
    """A sample of a component's Prometheus metrics: ``name{labels}`` exactly, or the sum over
    every label set of ``name``; 0 when absent. A connection refused or reset is tried again
    (twice, a second apart): one reset cost a whole 2,000-device run on a loaded machine."""
    url = f"http://{LOOPBACK}:{port}/metrics"
    for attempt in range(3):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            break
        except OSError:
            if attempt == 2:
                raise
            time.sleep(1.0)
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series == name or ("{" not in name and series.split("{")[0] == name):
            total += float(value)
    return total


class Stack:
    def __init__(
        self,
        work: Path,
        devices: int,
        processes: int,
        write_rate: float | None = None,
        compare_bridge: Path | None = None,
    ) -> None:
        self.work = work
        self.compare_bridge = compare_bridge
        self.write_rate = write_rate
        self.devices = devices
        self.processes = processes
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.pki = PkiStore.create(work / "pki", ca_name="Flotta benchmark CA")
        self.pki.issue_server(hostnames=("localhost",), addresses=(LOOPBACK,))
        for identity in (
            parse_identity(OPERATOR_IDENTITY),
            parse_identity(BRIDGE_IDENTITY),
        ):
            self.pki.issue_client(identity)
        self.mqtt_port = free_port(LOOPBACK)  # devices
        self.services_port = free_port(LOOPBACK)  # the operator and the bridge
        self.enrolment_port = free_port(LOOPBACK)  # the enrolment broker (the operator needs it)
        settings = settings_for_pki(
            self.pki.root,
            work / "mosquitto",
            port=self.mqtt_port,
            services_port=self.services_port,
            bind_address=LOOPBACK,
            run_as_root=True,
        )
        files = write_broker_files(settings, AclSettings(), work / "mosquitto" / "mosquitto.conf")
        enrolment = write_broker_files(
            enrolment_settings(settings, port=self.enrolment_port),
            AclSettings(),
            work / "mosquitto" / ENROLMENT_CONFIG_NAME,
        )
        self.broker = MosquittoProcess(
            files.config_path,
            log_path=work / "mosquitto.log",
            openssl_config=files.openssl_config_path,
        )
        self.enrolment_broker = MosquittoProcess(
            enrolment.config_path,
            log_path=work / "mosquitto-enrolment.log",
            openssl_config=files.openssl_config_path,
        )
        self.nats = NatsServer(work / "jetstream", log_path=work / "nats.log")
        self.api: client.ApiClient | None = None
        self.bridge_health = free_port(LOOPBACK)
        self.compare_health = free_port(LOOPBACK)
        self.operator_health = free_port(LOOPBACK)

    def bridge_metric(self, name: str) -> float:
        return _metric(self.bridge_health, name)

    def operator_metric(self, name: str) -> float:
        return _metric(self.operator_health, name)

    async def settle_writes(self, limit: float) -> float:
        """Wait (at most ``limit`` s) until the EdgeDevice writes that a change left behind
        are done: the bridge's queued visible changes and the operator's device writes. The
        last-seen refreshes that fall due are not waited for. Seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            if (
                self.bridge_metric(STATUS_CHANGES) == 0
                and self.operator_metric("flotta_operator_device_write_queue_depth") == 0
            ):
                break
            await asyncio.sleep(1.0)
        return time.perf_counter() - start

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.work / f"{name}.log").open("ab")
        self.children[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or ENV,
            start_new_session=True,
        )
        log.close()

    def check(self, name: str) -> None:
        if self.children[name].poll() is not None:
            tail = (self.work / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited:\n{tail}")

    def pids(self) -> dict[str, int]:
        out = {name: p.pid for name, p in self.children.items()}
        if self.broker.pid is not None:
            out["mosquitto"] = self.broker.pid
        if self.nats.pid is not None:
            out["nats-server"] = self.nats.pid
        out["benchmark"] = OWN  # this process: it shares the cores too
        return out

    def start_control_plane(self) -> None:
        kube_dir = self.work / "kube"
        kube_port = free_port(LOOPBACK)
        self._spawn(
            "kube-api",
            flotta("dev", "kube-api", "--state-dir", str(kube_dir), "--port", str(kube_port)),
        )
        kubeconfig = kube_dir / "kubeconfig"
        wait_until(lambda: kubeconfig.exists(), 60, "the kube API's kubeconfig")
        time.sleep(0.5)
        self.check("kube-api")
        self.kubeconfig = kubeconfig
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        crds = resources.load_documents(sorted((ROOT / "deploy" / "crds").glob("*.yaml")))
        resources.apply(self.api, crds, [])
        resources.ensure_namespace(self.api, "flotta")
        self.broker.start()
        self.enrolment_broker.start()
        self.nats.start()
        self._spawn(
            "operator",
            flotta(
                "operator",
                "run",
                "--kubeconfig",
                str(kubeconfig),
                "--pki-dir",
                str(self.pki.root),
                "--broker-port",
                str(self.services_port),
                "--enrolment-port",
                str(self.enrolment_port),
                "--auto-approve",
                NAMESPACE,
                "--health-port",
                str(self.operator_health),
                "--no-leader-election",
                *self._rate("--device-write-rate"),
            ),
        )
        self._spawn("bridge", self._bridge_command("flotta-bridge-0", self.bridge_health))
        if self.compare_bridge is not None:
            # Its own shared-subscription group: it gets every device message too, and the
            # two bridges' CPU is measured side by side over the same phases.
            sources = source_path(self.compare_bridge) + os.pathsep + str(self.compare_bridge)
            self._spawn(
                "bridge-compare",
                [
                    *self._bridge_command("flotta-bridge-compare", self.compare_health),
                    "--group",
                    "flotta-bridge-compare-benchmark",
                ],
                env={**ENV, "PYTHONPATH": sources},
            )
        time.sleep(2)
        for name in self.children:
            self.check(name)

    def _bridge_command(self, client_id: str, health_port: int) -> list[str]:
        clients = self.pki.root / "clients"
        return flotta(
            "bridge",
            "--mqtt-port",
            str(self.services_port),
            "--ca",
            str(self.pki.ca_cert_path),
            "--cert",
            str(clients / "internal-bridge.crt"),
            "--key",
            str(clients / "internal-bridge.key"),
            "--client-id",
            client_id,
            "--nats-url",
            self.nats.url,
            "--kubeconfig",
            str(self.kubeconfig),
            "--health-port",
            str(health_port),
            "--log-format",
            "text",
            *self._rate("--write-rate"),
        )

    def _rate(self, option: str) -> list[str]:
        return [option, str(self.write_rate)] if self.write_rate is not None else []

    def start_simulator(self) -> None:
        spread = max(2.0, self.devices / 250)  # about the rate TLS handshakes keep up with
        self._spawn(
            "simulator",
            flotta(
                "dev",
                "simulate",
                "--state-dir",
                str(self.work / "devices"),
                "--devices",
                str(self.devices),
                "--prefix",
                PREFIX,
                "--mqtt-port",
                str(self.mqtt_port),
                "--ca",
                str(self.pki.ca_cert_path),
                "--pki-dir",
                str(self.pki.root),
                "--namespace",
                NAMESPACE,
                "--metrics-interval",
                "0",
                "--heartbeat",
                str(HEARTBEAT),
                "--connect-spread",
                f"{spread:.1f}",
                "--processes",
                str(self.processes),
                "--report",
                str(self.report_file),
            ),
        )

    @property
    def report_file(self) -> Path:
        return self.work / "simulator-report.json"

    def simulator_report(self) -> FleetReport:
        """What the devices say: online since when, which versions the broker acknowledged."""
        return fleet_report(self.report_file, self.processes)

    def resource_version(self) -> int:
        assert self.api is not None
        listing = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "edgeworkloads", limit=1
        )
        return int(listing["metadata"]["resourceVersion"])

    def stop(self) -> None:
        for name in ("simulator", "bridge", "bridge-compare", "operator"):
            process = self.children.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.broker.stop()
        self.enrolment_broker.stop()
        self.nats.stop()
        process = self.children.get("kube-api")
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(20)
        if self.api is not None:
            self.api.close()


def fleet_report(path: Path, processes: int) -> FleetReport:
    """The simulator's report (``flotta dev simulate --report PATH``), summed over its
    processes: online since when, which versions the broker acknowledged."""
    shards: list[int | None] = [None] if processes == 1 else list(range(processes))
    return read_reports(report_path(path, shard) for shard in shards)


def fanout_seconds(report: FleetReport, start_wall: float) -> float:
    """A fan-out's time, the same for the fleet and its floor (``simulator_bench.py``): from
    ``start_wall`` (the wall clock just before the change: the EdgeWorkload patch, or the bare
    publisher's first publish) to the last device's acknowledgement, by the devices' own clock:
    when the broker acknowledged the status that reports the new version (the simulator's
    report; the same machine clock as the benchmark's, so a busy simulator writing its report
    late, or a busy process reading it, adds nothing)."""
    return max(0.0, report.last_change - start_wall)


def cpu_speed() -> float:
    """Milliseconds for one P-256 sign, verify and ECDH on this core, best of three rounds.

    Taken in the benchmark process just before a phase, while the stack is idle: the cores are
    shared with other machines' work, and a slower figure means every component's CPU time
    for the same work grows with it (a TLS handshake is mostly this)."""
    key = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    data = b"x" * 64
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(200):
            signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
            key.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
            key.exchange(ec.ECDH(), peer)
        best = min(best, (time.perf_counter() - started) * 1000 / 200)
    print(f"  CPU speed: {best:.3f} ms (P-256 sign+verify+ECDH)", flush=True)
    return best


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def workload(env_value: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeWorkload",
        "metadata": {"name": "fleet-bench", "namespace": NAMESPACE},
        "spec": {
            "type": "pod",
            "deviceSelector": {"matchLabels": {"fleet": "bench"}},
            "pod": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "localhost/flotta/busybox:latest",
                            "command": ["sleep", "3600"],
                            "env": [{"name": "ROUND", "value": env_value}],
                        }
                    ]
                }
            },
        },
    }


def create_devices(api: client.ApiClient, ids: list[str]) -> float:
    objects = client.CustomObjectsApi(api)

    def create(device_id: str) -> None:
        objects.create_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "edgedevices",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "EdgeDevice",
                "metadata": {"name": device_id, "labels": {"fleet": "bench"}},
                "spec": {"heartbeat": {"periodSeconds": HEARTBEAT}},
            },
        )

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(create, ids))
    return time.perf_counter() - start


PUBLISHES = "flotta_operator_publishes_total"
STATUSES = 'flotta_bridge_messages_total{kind="status"}'
STATUS_CHANGES = 'flotta_bridge_queue_depth{queue="status-changes"}'
# What the bridge received and wrote during a storm.
STORM_BRIDGE_COUNTS = (
    'flotta_bridge_messages_total{kind="connection"}',
    'flotta_bridge_messages_total{kind="status"}',
    'flotta_bridge_kube_writes_total{kind="urgent",result="ok"}',
    'flotta_bridge_kube_writes_total{kind="change",result="ok"}',
    'flotta_bridge_kube_writes_total{kind="refresh",result="ok"}',
)


async def fanout_timeline(
    stack: Stack, acknowledged: Any, start: float, published0: float
) -> list[tuple[float, int, int]]:
    """(seconds, desired states the broker acknowledged to the operator, devices that
    acknowledged) every half second until cancelled: where a fan-out spends its time."""
    samples: list[tuple[float, int, int]] = []
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(0.5)
            published = await asyncio.to_thread(stack.operator_metric, PUBLISHES)
            samples.append(
                (time.perf_counter() - start, int(published - published0), acknowledged())
            )
    return samples


async def wait_for(
    check: Any, total: int, limit: float, what: str, *, progress_every: float = 5.0
) -> float:
    """Seconds until ``check() >= total``; prints progress; TimeoutError names the shortfall."""
    start = time.perf_counter()
    shown = start
    while True:
        done = check()
        now = time.perf_counter()
        if done >= total:
            return now - start
        if now - start > limit:
            raise TimeoutError(f"{what}: {done} of {total} after {limit:.0f} s")
        if now - shown > progress_every:
            print(f"  {what}: {done}/{total} after {now - start:.0f} s", flush=True)
            shown = now
        await asyncio.sleep(0.05)  # each check reads the simulator's reports


# ---- one fleet size ------------------------------------------------------------------------


async def run_size(devices: int, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"devices": devices}
    work = Path(tempfile.mkdtemp(prefix=f"fleet-bench-{devices}-"))
    stack = Stack(work, devices, args.processes, args.write_rate, args.compare_bridge)
    ids = device_ids(PREFIX, devices)
    try:
        print(f"== {devices} devices (work dir {work})", flush=True)
        stack.start_control_plane()
        assert stack.api is not None
        objects = client.CustomObjectsApi(stack.api)
        objects.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "edgeworkloads", workload("0")
        )
        result["create_devices_s"] = await asyncio.to_thread(create_devices, stack.api, ids)
        print(f"  created {devices} EdgeDevices in {result['create_devices_s']:.1f} s", flush=True)
        started = time.perf_counter()
        await asyncio.to_thread(provision, stack.pki, work / "devices", ids, namespace=NAMESPACE)
        result["provision_s"] = time.perf_counter() - started
        print(f"  provisioned certificates in {result['provision_s']:.1f} s", flush=True)
        since = time.time()
        stack.start_simulator()
        usage = Usage(stack.pids())
        usage.begin()

        def online() -> int:
            stack.check("simulator")
            return stack.simulator_report().online_since(since)

        result["connect_s"] = await wait_for(online, devices, args.timeout, "online")
        result["initial_converged_s"] = await wait_for(
            lambda: devices - stack.simulator_report().unreported,
            devices,
            args.timeout,
            "initial version applied",
        )
        result["usage_connect"] = usage.end()
        print(
            f"  all online in {result['connect_s']:.1f} s, converged after "
            f"{result['initial_converged_s']:.1f} s more",
            flush=True,
        )
        await asyncio.sleep(args.settle)
        usage = Usage(stack.pids())
        usage.begin()
        await asyncio.sleep(min(20.0, args.write_window))
        result["usage_idle"] = usage.end()

        if args.writes:
            # The initial statuses queue up behind the bridge's write rate limit; let them
            # drain (bounded) so that the window sees heartbeats, not the backlog of changes.
            # Last-seen refreshes that fall due are what the window is for: not waited on.
            backlog = 'flotta_bridge_queue_depth{queue="status-writes"}'
            result["drain_s"] = await stack.settle_writes(args.drain)
            result["backlog_at_start"] = stack.bridge_metric(backlog)
            usage.begin()
            bw0 = stack.bridge_metric("flotta_bridge_kube_writes_total")
            rv0, hb0, t0 = (
                stack.resource_version(),
                stack.bridge_metric(STATUSES),
                time.perf_counter(),
            )
            await asyncio.sleep(args.write_window)
            rv1, hb1, t1 = (
                stack.resource_version(),
                stack.bridge_metric(STATUSES),
                time.perf_counter(),
            )
            bw1 = stack.bridge_metric("flotta_bridge_kube_writes_total")
            result["usage_steady"] = usage.end()
            result["writes_per_s"] = (rv1 - rv0) / (t1 - t0)
            result["bridge_writes_per_s"] = (bw1 - bw0) / (t1 - t0)
            result["heartbeats_per_s"] = (hb1 - hb0) / (t1 - t0)
            result["write_window_s"] = t1 - t0
            result["backlog_at_end"] = stack.bridge_metric(backlog)
            print(
                f"  steady: {result['heartbeats_per_s']:.0f} heartbeats/s, "
                f"{result['writes_per_s']:.2f} Kubernetes writes/s "
                f"(bridge {result['bridge_writes_per_s']:.2f}/s; status backlog "
                f"{result['backlog_at_start']:.0f} -> {result['backlog_at_end']:.0f} "
                f"after draining {result['drain_s']:.0f} s)",
                flush=True,
            )

        if args.fanout:
            # A rollout to a settled fleet: not into the writes its enrolment left queued.
            result["fanout_drain_s"] = await stack.settle_writes(args.drain)
            await asyncio.sleep(1.0)
            result["speed_fanout"] = cpu_speed()
            print("  fan-out: patching the EdgeWorkload", flush=True)  # a cue for profilers
            usage.begin()
            start, start_wall = time.perf_counter(), time.time()
            objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NAMESPACE,
                "edgeworkloads",
                "fleet-bench",
                {"spec": workload("1")["spec"]},
            )

            def moved() -> int:
                return stack.simulator_report().changed_since(start_wall)

            published0 = stack.operator_metric(PUBLISHES)
            timeline = asyncio.ensure_future(fanout_timeline(stack, moved, start, published0))
            try:
                waited = await wait_for(moved, devices, args.timeout, "fan-out")
            finally:
                timeline.cancel()
                result["fanout_timeline"] = (await asyncio.gather(timeline))[0]
            result["usage_fanout"] = usage.end()
            report = stack.simulator_report()
            # From the devices' own acknowledgement times: a busy simulator writes its report
            # late, by as much as one turn of its loop (up to a second in a fan-out).
            result["fanout_s"] = fanout_seconds(report, start_wall)
            first_change = report.first_change_since(start_wall) or start_wall
            first = result["fanout_first_s"] = max(0.0, first_change - start_wall)
            result["fanout_seen_s"] = waited
            print(
                f"  fan-out: every device acknowledged in {result['fanout_s']:.2f} s "
                f"(first after {first:.2f} s; reports showed it after {waited:.2f} s)",
                flush=True,
            )
            print(
                "  timeline (s published/acknowledged): "
                + ", ".join(f"{t:.1f} {p}/{a}" for t, p, a in result["fanout_timeline"]),
                flush=True,
            )

        if args.storm:
            # A broker restart under a settled fleet, as the fan-out: the status writes a phase
            # leaves queued (10,000 at the bridge's 50 a second) would otherwise take the API,
            # the operator and the bridge half a core for a varying part of the storm.
            result["storm_drain_s"] = await stack.settle_writes(args.drain)
            await asyncio.sleep(1.0)
            result["storm_backlog"] = stack.bridge_metric(STATUS_CHANGES)
            bridge_before = {name: stack.bridge_metric(name) for name in STORM_BRIDGE_COUNTS}
            result["speed_storm"] = cpu_speed()
            warnings_before = stack.simulator_report().mqtt_warnings
            overflows_before = listen_overflows()
            usage.begin()
            stack.broker.stop()
            since = time.time()
            start = time.perf_counter()
            stack.broker.start(timeout=60)
            result["broker_restart_s"] = time.perf_counter() - start
            usage = Usage(stack.pids())  # the broker has a new PID
            usage.begin()
            restarted = time.time()
            result["storm_online_s"] = await wait_for(
                lambda: stack.simulator_report().online_since(since),
                devices,
                args.timeout,
                "storm online",
            )

            def converged() -> int:
                # The desired state did not change: a device is converged once back online
                # with a version acknowledged (a birth reports the version it runs).
                report = stack.simulator_report()
                return min(report.online_since(since), devices - report.unreported)

            await wait_for(converged, devices, args.timeout, "storm converged")
            result["usage_storm"] = usage.end()
            storm_seconds = time.monotonic() - usage.started
            result["storm_ms_per_reconnect"] = {
                name: 1000 * cores * storm_seconds / devices
                for name, (cores, _) in result["usage_storm"].items()
            }
            print(
                "  storm: CPU per reconnect (ms): "
                + ", ".join(f"{n} {v:.3f}" for n, v in result["storm_ms_per_reconnect"].items()),
                flush=True,
            )
            result["storm_work_s"] = sum(cpu for cpu, _ in result["usage_storm"].values()) * (
                time.time() - restarted
            )
            report = stack.simulator_report()
            result["storm_backlog_end"] = stack.bridge_metric(STATUS_CHANGES)
            result["storm_bridge_counts"] = {
                name: stack.bridge_metric(name) - before for name, before in bridge_before.items()
            }
            print(f"  storm: bridge counts {result['storm_bridge_counts']}", flush=True)
            warnings = report.mqtt_warnings - warnings_before
            result["storm_mqtt_warnings"] = warnings.most_common(5)
            print(f"  storm: {warnings.total()} MQTT client warnings: {warnings.most_common(5)}")
            print(
                f"  storm: waited {result['storm_drain_s']:.0f} s for the writes to settle; "
                f"visible changes queued at the bridge {result['storm_backlog']:.0f} -> "
                f"{result['storm_backlog_end']:.0f}",
                flush=True,
            )
            result["storm_listen_overflows"] = listen_overflows() - overflows_before
            result["storm_births"] = births_per_second(report, restarted)
            print(
                f"  storm: births per second {result['storm_births']}; "
                f"{result['storm_listen_overflows']} connections dropped by a full listen queue",
                flush=True,
            )
            result["storm_seen_s"] = result["storm_online_s"]
            result["storm_online_s"] = report.last_birth - restarted
            changed = report.last_change if report.last_change >= restarted else 0.0
            result["storm_converged_s"] = max(0.0, changed - report.last_birth)
            print(
                f"  storm: online in {result['storm_online_s']:.1f} s, converged in "
                f"{result['storm_converged_s']:.1f} s; {result['storm_work_s']:.0f} CPU-seconds",
                flush=True,
            )
    except (TimeoutError, RuntimeError, AssertionError) as exc:
        result["error"] = str(exc)
        print(f"  FAILED: {exc}", flush=True)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def births_per_second(report: FleetReport, since: float) -> list[int]:
    """How many of the online devices had their birth acknowledged in each second from
    ``since`` (the devices' own timestamps: no lag from the reports being written late)."""
    first = math.floor(since * BUCKETS)
    seconds: Counter[int] = Counter()
    for bucket, count in report.births.items():
        if bucket >= first:
            seconds[(bucket - first) // BUCKETS] += count
    return per_second(seconds)


def per_second(counts: Counter[int]) -> list[int]:
    """Counts by second from 0, as a list with the seconds without any as 0."""
    return [counts[second] for second in range(max(counts, default=-1) + 1)]


# ---- report --------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} x {cpu}, {mem:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average at start {load[0]:.1f} (the cores are shared with other work)"
    )


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


FANOUT_FLOOR_GOAL = 1.25  # the whole system's fan-out / the device tier's alone
STORM_FLOOR_GOAL = 1.15  # the whole system's storm / the device tier's alone


def floor_arguments(devices: int, args: argparse.Namespace) -> argparse.Namespace:
    """simulator_bench.py's settings for the device tier of this fleet: same devices, simulator
    processes, heartbeat and connect spread; one fan-out round."""
    return argparse.Namespace(
        devices=devices,
        processes=args.processes,
        heartbeat=HEARTBEAT,
        spread=max(2.0, devices / 250),
        window=10.0,
        rounds=1,
        storm=args.storm,
        concurrent_connects=16,
        timeout=args.timeout,
        label="floor of fleet_bench",
    )


def measure_floor(devices: int, args: argparse.Namespace) -> dict[str, Any]:
    """The device tier alone (Mosquitto, the simulator, a bare publisher in the operator's
    place; no Kubernetes API, operator or bridge), right after the fleet run."""
    import simulator_bench  # benchmarks/simulator_bench.py (it imports this module)

    print(f"floor: the device tier alone with {devices} devices", flush=True)
    try:
        floor = asyncio.run(simulator_bench.run(floor_arguments(devices, args)))
    except Exception as exc:  # the fleet's figures stand without it
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {key: floor[key] for key in ("fanout_s", "storm_s") if key in floor}


def floor_ratios(result: dict[str, Any]) -> dict[str, float]:
    floor = result.get("floor") or {}
    ratios = {}
    if result.get("fanout_s") and floor.get("fanout_s"):
        ratios["fanout"] = result["fanout_s"] / floor["fanout_s"]
    if result.get("storm_online_s") and floor.get("storm_s"):
        ratios["storm"] = result["storm_online_s"] / floor["storm_s"]
    return ratios


def _verdict(ratio: float | None, goal: float) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f} ({'met' if ratio <= goal else 'missed'})"


def floor_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "Against the floor: the device tier alone in the same run (`simulator_bench.py`'s "
        "Mosquitto, simulator and a bare publisher in its own process in the operator's place, "
        "same devices, heartbeat, simulator processes and connect spread, started right after "
        "the fleet run; both time the fan-out and the storm from the devices' own reports). "
        "Goals: fan-out at most "
        f"{FANOUT_FLOOR_GOAL}x, storm at most {STORM_FLOOR_GOAL}x the floor.",
        "",
        "| devices | fan-out: fleet / floor (s) | ratio (goal <= "
        f"{FANOUT_FLOOR_GOAL}) | storm: fleet / floor (s) | ratio (goal <= {STORM_FLOOR_GOAL}) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        floor = r.get("floor") or {}
        ratios = floor_ratios(r)
        lines.append(
            f"| {r['devices']} | {fmt(r.get('fanout_s'), 2)} / {fmt(floor.get('fanout_s'), 2)} "
            f"| {_verdict(ratios.get('fanout'), FANOUT_FLOOR_GOAL)} "
            f"| {fmt(r.get('storm_online_s'))} / {fmt(floor.get('storm_s'))} "
            f"| {_verdict(ratios.get('storm'), STORM_FLOOR_GOAL)} |"
        )
        if floor.get("error"):
            lines.append(f"\nThe floor at {r['devices']} devices failed: {floor['error']}.")
    return lines


def report(results: list[dict[str, Any]], args: argparse.Namespace, where: str) -> str:
    lines = [
        "# Fleet benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `benchmarks/fleet_bench.py "
        f"{' '.join(sys.argv[1:])}`.",
        "",
        f"Machine: {where}.",
        "",
        "Everything runs on this machine over loopback: local Kubernetes API, Mosquitto (mTLS, "
        "persistence), nats-server, operator, bridge, and "
        f"`flotta dev simulate --processes {args.processes}` (every device its own key, "
        f"certificate and TLS connection; heartbeat every {HEARTBEAT} s, no telemetry).",
        "",
        "| devices | all online (s) | fan-out: all acknowledged (s) (goal 3) "
        "| first ack (s, +-0.1) "
        "| heartbeats/s | Kubernetes writes/s (goal <= 1 % of heartbeats) "
        "| storm: all online (s) (goal 30) | storm: then converged (s more) | error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hb, wr = r.get("heartbeats_per_s"), r.get("writes_per_s")
        share = f" ({100 * wr / hb:.2f} %)" if hb and wr is not None else ""
        lines.append(
            f"| {r['devices']} | {fmt(r.get('connect_s'))} | {fmt(r.get('fanout_s'), 2)} "
            f"| {fmt(r.get('fanout_first_s'), 2)} | {fmt(hb)} | {fmt(wr, 2)}{share}; bridge "
            f"{fmt(r.get('bridge_writes_per_s'), 2)}; backlog {fmt(r.get('backlog_at_start'), 0)}"
            f" -> {fmt(r.get('backlog_at_end'), 0)} "
            f"| {fmt(r.get('storm_online_s'))} | {fmt(r.get('storm_converged_s'))} "
            f"| {r.get('error', '')} |"
        )
    if any("floor" in r for r in results):
        lines += floor_lines(results)
    lines += [
        "",
        "Kubernetes writes/s counts every write of every component (the local API's cluster-wide "
        "resourceVersion); `bridge` is the bridge's own EdgeDevice status writes; `backlog` is the "
        "bridge's queue of status writes (visible changes, and last-seen refreshes that are due, "
        "paced by `--refresh-rate`, default 5/s) at the start and the end of the window. The "
        "window starts once its visible changes have been written (refreshes may still be "
        "queued: they are what the window measures), or after `--drain` seconds.",
    ]
    for r in results:
        if r.get("fanout_timeline"):
            points = ", ".join(f"{t:.1f} s {p}/{a}" for t, p, a in r["fanout_timeline"])
            lines += [
                "",
                f"Fan-out timeline at {r['devices']} devices (desired states published, as "
                f"acknowledged by the broker / devices that acknowledged, as the simulator's "
                f"reports showed them then: those lag by a second or so in a fan-out): "
                f"{points}.",
            ]
    for r in results:
        speeds = [
            f"{name} {r[key]:.3f} ms"
            for name, key in (("fan-out", "speed_fanout"), ("storm", "speed_storm"))
            if key in r
        ]
        if speeds:
            lines += [
                "",
                f"CPU speed just before each phase at {r['devices']} devices (one P-256 sign, "
                f"verify and ECDH in the benchmark process, best of three rounds; lower is "
                f"faster): {', '.join(speeds)}.",
            ]
        if "storm_work_s" in r:
            kinds = "; ".join(f"{n} x {kind}" for kind, n in r.get("storm_mqtt_warnings", []))
            lines.append(
                f"The storm took {r['storm_work_s']:.0f} CPU-seconds across all processes; "
                f"the simulated devices' MQTT clients warned: {kinds or 'nothing'}. It started "
                f"after {r.get('storm_drain_s', 0):.0f} s waiting for the status writes to "
                f"settle; the bridge's queue of visible changes went "
                f"{r.get('storm_backlog', 0):.0f} -> {r.get('storm_backlog_end', 0):.0f}."
            )
            births = r.get("storm_births")
            if births:
                lines.append(
                    "Births per second of the storm (as the devices timed them, from the "
                    f"broker's restart): {', '.join(str(n) for n in births)}; connections "
                    "dropped by a full listen queue meanwhile (the kernel's count): "
                    f"{r.get('storm_listen_overflows', 0)}."
                )
            per_reconnect = r.get("storm_ms_per_reconnect")
            if per_reconnect:
                lines.append(
                    "CPU per reconnect (ms, the storm's CPU-seconds over the devices): "
                    + ", ".join(f"{n} {v:.3f}" for n, v in per_reconnect.items())
                    + "."
                )
            counts = r.get("storm_bridge_counts")
            if counts:
                got = ", ".join(f"{series} {value:.0f}" for series, value in counts.items())
                lines.append(f"During the storm the bridge counted: {got}.")
    lines += ["", "## CPU (cores, averaged over the phase) and resident memory (MiB)", ""]
    for r in results:
        for phase in ("usage_connect", "usage_idle", "usage_fanout", "usage_steady", "usage_storm"):
            usage = r.get(phase)
            if not usage:
                continue
            cells = ", ".join(
                f"{name} {cpu:.2f} cores / {rss:.0f} MiB" for name, (cpu, rss) in usage.items()
            )
            lines.append(f"- {r['devices']} devices, {phase.removeprefix('usage_')}: {cells}")
    lines += ["", "## Simulator cost per 1,000 devices", ""]
    for r in results:
        for phase in ("usage_idle", "usage_steady"):
            sim = (r.get(phase) or {}).get("simulator")
            if sim:
                per = 1000 / r["devices"]
                lines.append(
                    f"- {r['devices']} devices ({phase.removeprefix('usage_')}): "
                    f"{sim[0] * per:.3f} cores and {sim[1] * per:.0f} MiB per 1,000 devices"
                )
    idle = [(r["devices"], r["usage_idle"]["simulator"]) for r in results if r.get("usage_idle")]
    for (n0, (c0, m0)), (n1, (c1, m1)) in itertools.pairwise(idle):
        per = 1000 / (n1 - n0)
        lines.append(
            f"- marginal, {n0} -> {n1} devices (idle): {(c1 - c0) * per:.3f} cores and "
            f"{(m1 - m0) * per:.0f} MiB per 1,000 devices"
        )
    lines += [
        "",
        "Setup times (not goals): "
        + "; ".join(
            f"{r['devices']}: EdgeDevices created in {fmt(r.get('create_devices_s'))} s, "
            f"certificates issued in {fmt(r.get('provision_s'))} s"
            for r in results
        ),
        "",
        "Agent footprint: measured separately by `benchmarks/agent_footprint_bench.py` "
        "(results in `benchmarks/results/agent.md`).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1000", help="fleet sizes, comma separated")
    parser.add_argument("--processes", type=int, default=2, help="simulator processes")
    parser.add_argument("--fanout", action="store_true")
    parser.add_argument("--writes", action="store_true")
    parser.add_argument("--storm", action="store_true")
    parser.add_argument(
        "--write-rate",
        type=float,
        help="EdgeDevice writes a second for the operator and for the bridge (default: theirs)",
    )
    parser.add_argument("--write-window", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--drain",
        type=float,
        default=300.0,
        help="max seconds for the bridge's backlog of visible changes to drain",
    )
    parser.add_argument("--settle", type=float, default=15.0, help="seconds before a phase")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per wait")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the device tier alone (simulator_bench.py) after the fleet run",
    )
    parser.add_argument(
        "--compare-bridge",
        type=Path,
        metavar="TREE",
        help="also run the bridge of this source tree (another checkout of the repository), in "
        "its own shared-subscription group so that it gets every message too: both bridges' "
        "CPU side by side in the same run (as bridge and bridge-compare)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (args.fanout or args.writes or args.storm):
        args.fanout = args.writes = args.storm = True
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the broker
    where = machine()
    results = []
    earlier = earlier_runs(args.out)
    for size in (int(s) for s in args.devices.split(",")):
        if size + 512 > hard:
            print(f"{size} devices need more than the {hard} open files allowed here")
            continue
        result = asyncio.run(run_size(size, args))
        if args.floor and (args.fanout or args.storm) and "error" not in result:
            result["floor"] = measure_floor(size, args)
            for name, ratio in floor_ratios(result).items():
                print(f"  {name}: {ratio:.2f}x the device tier alone", flush=True)
        results.append(result)
        record(args.out, report(results, args, where), earlier)
    print(f"results written to {args.out}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

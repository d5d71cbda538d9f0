"""Bridge benchmarks on this machine, with real Mosquitto, nats-server, the local Kubernetes
API and the bridge as a separate process (``flotta bridge``).

1. Ingest rate into NATS: N device messages (heartbeats, metrics, logs, events of 10,000
   devices) wait in the bridge's persistent session; the bridge is started and the time to
   store all of them in JetStream is measured from the streams. The same run measures a bare
   paho-to-NATS passthrough (no validation, no envelope, same QoS 1 + manual ack after the
   JetStream acknowledgement) on the same messages.
2. Kubernetes writes with 10,000 devices heartbeating every 10 s and nothing changing
   (the EdgeDevices start in the steady state; their last-seen times are old enough that
   refreshes are due during the run).
3. Latency of a real change (a workload fails) until it is visible in the EdgeDevice.

The benchmark broker uses a permissive test ACL: the operator identity may publish on every
device topic, so that a few connections can speak for 10,000 devices.

    PYTHONPATH=schemas:operator:bridge:agent:mosquitto:deploy:. \
        /work/venv/bin/python benchmarks/bridge_bench.py --out benchmarks/results/bridge.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as mqtt
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: where the source folders are
from tests.fixtures.sources import SOURCE_DIRS, source_path  # noqa: E402

sys.path[1:1] = [str(ROOT / folder) for folder in SOURCE_DIRS]

from flotta.bridge.device_status import DeviceContext, DeviceStatus, on_heartbeat, status_patch  # noqa: E402
from flotta.dev.nats_server import NatsServer, free_port  # noqa: E402
from flotta.mosquitto.acl import AclSettings  # noqa: E402
from flotta.mosquitto.config import BrokerLimits, enrolment_settings  # noqa: E402
from flotta.mosquitto.files import settings_for_pki, write_broker_files  # noqa: E402
from flotta.pki.files import write_atomic  # noqa: E402
from flotta.schemas.codec import encode  # noqa: E402
from flotta.schemas.crd.common import GROUP, VERSION  # noqa: E402
from flotta.schemas.topics import DeviceTopic, device_topic  # noqa: E402
from flotta.schemas.wire.events import DeviceEvent  # noqa: E402
from flotta.schemas.wire.status import StatusReport, WorkloadReport  # noqa: E402
from flotta.schemas.wire.telemetry import LogLine, LogsBatch, MetricSample, MetricsBatch  # noqa: E402
from tests.bridge.support import create_namespace  # noqa: E402
from tests.fixtures.brokers import TestBroker, new_fleet_pki  # noqa: E402
from tests.fixtures.kubeprocess import LocalKube  # noqa: E402

NAMESPACE = "bench"
PERIOD = 10
STREAMS = ("FLOTTA_EVENTS", "FLOTTA_TELEMETRY", "FLOTTA_STATUS")
PERMISSIVE_ACL = """# Benchmark only: the operator identity speaks for every device.
user internal:bridge
topic read flotta/devices/#
topic write flotta/devices/+/receipts

user internal:operator
topic write flotta/devices/#
"""


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# ---- servers ---------------------------------------------------------------------------------


class BenchBroker(TestBroker):
    """The test broker with room for a large offline session and a permissive ACL."""

    __test__ = False

    def _write_files(self) -> None:
        settings = settings_for_pki(
            self.pki.root,
            self.workdir,
            port=self.port,
            services_port=self.services_port,
            bind_address=self.host,
            persistence_dir=self.persistence_dir,
            run_as_root=True,
        )
        limits = BrokerLimits(
            max_queued_messages=1_000_000,
            max_queued_bytes=2 * 1024 * 1024 * 1024,
            max_inflight_messages=0,
        )
        write_broker_files(replace(settings, limits=limits), AclSettings(), self.config_path)
        write_atomic(settings.acl_file, PERMISSIVE_ACL.encode())
        write_broker_files(
            enrolment_settings(settings, port=self.enrolment_port),
            AclSettings(),
            self.enrolment_config_path,
        )


def device_ids(count: int) -> list[str]:
    return [f"dev-{n:05d}" for n in range(count)]


def steady_report(now: datetime, failed: bool = False) -> StatusReport:
    return StatusReport(
        time=now,
        applied_version="v1",
        heartbeat_period_seconds=PERIOD,
        workloads=[
            WorkloadReport(name="web", phase="Failed" if failed else "Running"),  # type: ignore[arg-type]
            WorkloadReport(name="db", phase="Running"),
        ],
    )


def create_devices(api: k8s.ApiClient, ids: list[str], seen: datetime) -> None:
    """EdgeDevices already in the steady state that the heartbeats will describe."""
    custom = k8s.CustomObjectsApi(api)

    def create(device_id: str) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeDevice",
            "metadata": {"name": device_id, "namespace": NAMESPACE},
            "spec": {"heartbeat": {"periodSeconds": PERIOD}},
        }
        created = custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "edgedevices", body
        )
        generation = int(created["metadata"].get("generation", 1))
        context = DeviceContext(NAMESPACE, device_id, generation, "v1", PERIOD)
        status = on_heartbeat(DeviceStatus(), steady_report(seen), context, seen)
        patch = status_patch(status)
        patch["status"]["desiredVersion"] = "v1"
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            NAMESPACE,
            "edgedevices",
            device_id,
            patch,
            _content_type="application/merge-patch+json",
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, ids))


# ---- device traffic ----------------------------------------------------------------------------


class Speaker:
    """One MQTT connection publishing for many devices (QoS 1, many in flight)."""

    def __init__(self, broker: TestBroker, creds: Any, client_id: str) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set(
            ca_certs=str(creds.ca), certfile=str(creds.cert), keyfile=str(creds.key)
        )
        self.client.max_inflight_messages_set(2000)
        self.client.max_queued_messages_set(0)
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect(broker.host, broker.port_for(creds.identity), keepalive=60)
        self.client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("benchmark publisher did not connect")

    def publish_all(self, messages: Iterator[tuple[str, bytes]]) -> int:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ingest_messages(ids: list[str], per_device: int, run: int) -> list[tuple[str, bytes]]:
    """A mix: 1/2 heartbeats, 1/4 metrics batches, 1/6 log batches, 1/12 events."""
    base = datetime.now(UTC)
    messages = []
    kinds = [DeviceTopic.STATUS] * 6 + [DeviceTopic.METRICS] * 3 + [DeviceTopic.LOGS] * 2
    kinds += [DeviceTopic.EVENTS]
    for round_ in range(per_device):
        for index, device_id in enumerate(ids):
            kind = kinds[(index + round_) % len(kinds)]
            stamp = base + timedelta(microseconds=round_ * 1000 + run)
            sequence = run * 1000 + round_
            payload: Any
            if kind is DeviceTopic.STATUS:
                payload = steady_report(stamp)
            elif kind is DeviceTopic.METRICS:
                samples = [
                    MetricSample(name=f"m{n}", labels={"unit": "x"}, value=n * 1.5, timestamp_ms=n)
                    for n in range(5)
                ]
                payload = MetricsBatch(stream=f"r{run}", sequence=sequence, samples=samples)
            elif kind is DeviceTopic.LOGS:
                lines = [LogLine(workload="web", time=stamp, line=f"line {n}") for n in range(3)]
                payload = LogsBatch(stream=f"r{run}", sequence=sequence, lines=lines)
            else:
                payload = DeviceEvent(
                    id=f"r{run}-{round_}", time=stamp, reason="Heartbeat", message="bench"
                )
            messages.append((device_topic(device_id, kind), encode(payload)))
    return messages


# ---- processes -----------------------------------------------------------------------------


PROFILE: list[str] = []  # ["-m", "cProfile", "-o", FILE] with --profile FILE


def bridge_command(args: dict[str, Any]) -> list[str]:
    return [
        sys.executable, *PROFILE, "-m", "flotta.cli", "--log-level", "WARNING", "bridge",
        "--mqtt-host", args["host"], "--mqtt-port", str(args["port"]),
        "--ca", str(args["ca"]), "--cert", str(args["cert"]), "--key", str(args["key"]),
        "--client-id", args["client_id"], "--nats-url", args["nats_url"],
        "--kubeconfig", str(args["kubeconfig"]), "--health-port", str(args["health_port"]),
        "--log-format", "text",
    ]  # fmt: skip


def baseline_command(args: dict[str, Any]) -> list[str]:
    return [
        sys.executable, __file__, "baseline",
        "--mqtt-host", args["host"], "--mqtt-port", str(args["port"]),
        "--ca", str(args["ca"]), "--cert", str(args["cert"]), "--key", str(args["key"]),
        "--client-id", args["client_id"], "--nats-url", args["nats_url"],
        "--ready-file", str(args["ready_file"]),
    ]  # fmt: skip


class Child:
    def __init__(self, command: list[str], log_path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": source_path() + os.pathsep + str(Path.cwd())}
        self.log_path = log_path
        with log_path.open("ab") as handle:
            self.process = subprocess.Popen(
                command, env=env, stdout=handle, stderr=handle, start_new_session=True
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            started = time.monotonic()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                log(f"{self.log_path.name}: no exit 60 s after SIGTERM; killing it")
                self.process.send_signal(signal.SIGUSR1)
                time.sleep(1)
                self.process.kill()
                self.process.wait(10)
            log(f"{self.log_path.name}: stopped in {time.monotonic() - started:.1f} s")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the child so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"child exited: {self.log_path.read_text()[-3000:]}")


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except (urllib.error.URLError, ConnectionError) as error:
        code = getattr(error, "code", 0)
        return int(code or 0), ""


def wait_ready(
    child: Child, port: int | None, ready_file: Path | None, within: float = 120
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        child.check()
        if port is not None and http_get(port, "/readyz")[0] == 200:
            return
        if ready_file is not None and ready_file.exists():
            return
        time.sleep(0.1)
    raise RuntimeError(f"not ready: {child.log_path.read_text()[-3000:]}")


def metric(port: int, name: str, labels: str = "") -> float:
    _, text = http_get(port, "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def change_writes(port: int) -> float:
    """Status writes of visible changes (urgent ones and the rest), not last-seen refreshes."""
    return sum(
        metric(port, "flotta_bridge_kube_writes_total", f'kind="{kind}"')
        for kind in ("urgent", "change")
    )


async def stream_total(url: str) -> int:
    """Messages ever stored in the streams (sequence numbers: limits and purges aside)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = 0
        for stream in STREAMS:
            total += int((await js.stream_info(stream)).state.last_seq)
        return total
    finally:
        await nc.close()


async def purge_streams(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for stream in STREAMS:
            await js.purge_stream(stream)
    finally:
        await nc.close()


def measure_drain(
    url: str, expected: int, cpu_seconds: Callable[[], float], within: float = 180
) -> tuple[float, float, float]:
    """While the streams fill up to ``expected``: (messages a second, seconds, CPU seconds of
    the subscribers per message)."""
    start_count = asyncio.run(stream_total(url))
    first: tuple[float, int] | None = None
    cpu_first = 0.0
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        count = asyncio.run(stream_total(url))
        now = time.monotonic()
        if first is None and count > start_count:
            first = (now, count)
            cpu_first = cpu_seconds()
        if count >= start_count + expected:
            assert first is not None
            seconds = now - first[0]
            cpu = (cpu_seconds() - cpu_first) / max(count - first[1], 1)
            rate = (count - first[1]) / seconds if seconds > 0 else float("inf")
            return rate, seconds, cpu
        time.sleep(0.05)
    raise RuntimeError(f"streams stopped at {count - start_count} of {expected}")


# ---- the runs --------------------------------------------------------------------------------


def forget_session(broker: TestBroker, creds: Any, client_id: str) -> None:
    """End a persistent session (and its shared subscriptions) so it queues nothing more."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(ca_certs=str(creds.ca), certfile=str(creds.cert), keyfile=str(creds.key))
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(broker.host, broker.port_for(creds.identity), clean_start=True)
    client.loop_start()
    connected.wait(10)
    client.disconnect()
    client.loop_stop()


@dataclass(frozen=True)
class Subscriber:
    """One replica in the shared subscription: its MQTT client id, its command, and how to
    tell that it is ready (a health port or a ready file)."""

    client_id: str
    command: list[str]
    port: int | None = None
    ready_file: Path | None = None


def run_ingest(
    label: str,
    replicas: list[Subscriber],
    creds: Any,
    broker: TestBroker,
    speaker_creds: Any,
    nats_url: str,
    messages: list[tuple[str, bytes]],
    workdir: Path,
) -> tuple[float, float, float]:
    """Start, stop (the sessions stay), queue the messages, restart, measure the drain.

    With several replicas the broker splits the queued messages between their sessions
    (one shared subscription group), and the drain runs in all of them at once."""

    def start_all() -> list[Child]:
        for replica in replicas:
            if replica.ready_file is not None:
                replica.ready_file.unlink(missing_ok=True)
        return [Child(r.command, workdir / f"{label}-{r.client_id}.log") for r in replicas]

    children = start_all()
    try:
        for child, replica in zip(children, replicas, strict=True):
            wait_ready(child, replica.port, replica.ready_file)
    finally:
        for child in children:
            child.stop()
    speakers = [Speaker(broker, speaker_creds, f"speaker-{label}-{n}") for n in range(2)]
    started = time.monotonic()
    halves = (messages[: len(messages) // 2], messages[len(messages) // 2 :])
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda pair: pair[0].publish_all(iter(pair[1])), zip(speakers, halves, strict=True)
            )
        )
    log(f"{label}: {len(messages)} messages queued in {time.monotonic() - started:.1f} s")
    for speaker in speakers:
        speaker.close()
    children = start_all()
    try:
        rate, seconds, cpu = measure_drain(
            nats_url, len(messages), lambda: sum(c.cpu_seconds() for c in children)
        )
    finally:
        for child in children:
            child.stop()
        for replica in replicas:
            forget_session(broker, creds, replica.client_id)
    log(
        f"{label} x{len(replicas)}: {len(messages)} messages into JetStream at {rate:,.0f}/s "
        f"({seconds:.2f} s), {cpu * 1e6:.0f} us CPU per message, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    return rate, seconds, cpu


class ChangeWatcher:
    """Watches the EdgeDevices (as kubectl get -w would) and notes when a device first shows
    workload ``web`` Failed."""

    def __init__(self, api: k8s.ApiClient, resource_version: int) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.seen: dict[str, float] = {}
        self.stopped = False
        self.version = str(resource_version)
        self.watch = k8s_watch.Watch()
        self.thread = threading.Thread(
            target=self._run, args=(str(resource_version),), name="watch", daemon=True
        )
        self.thread.start()

    def _run(self, version: str) -> None:
        self.version = version
        while not self.stopped:
            try:
                self._follow()
            except Exception as exc:  # a dropped watch is resumed
                if not self.stopped:
                    log(f"watch ended ({type(exc).__name__}); resuming")
                    time.sleep(0.05)

    def _follow(self) -> None:
        self.watch = k8s_watch.Watch()
        for event in self.watch.stream(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            "edgedevices",
            resource_version=self.version,
            timeout_seconds=600,
        ):
            obj = event["object"]
            self.version = obj["metadata"].get("resourceVersion", self.version)
            name = obj["metadata"]["name"]
            phases = {w["name"]: w["phase"] for w in obj.get("status", {}).get("workloads", [])}
            if phases.get("web") == "Failed" and name not in self.seen:
                self.seen[name] = time.monotonic()

    def wait(self, device_id: str, within: float) -> float | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if device_id in self.seen:
                return self.seen[device_id]
            time.sleep(0.002)
        return None

    def stop(self) -> None:
        self.stopped = True
        self.watch.stop()


def run_steady(
    child: Child,
    port: int,
    kube_api: k8s.ApiClient,
    broker: TestBroker,
    speaker_creds: Any,
    ids: list[str],
    seconds: float,
    probes: int,
) -> dict[str, Any]:
    """10,000 devices heartbeating every PERIOD s for ``seconds``; probes of real changes."""
    failed: set[str] = set()
    speakers = [Speaker(broker, speaker_creds, f"steady-{n}") for n in range(2)]
    stop = threading.Event()
    sent = [0]

    def heartbeats() -> None:
        interval = PERIOD / len(ids)
        next_at = time.monotonic()
        index = 0
        while not stop.is_set():
            device_id = ids[index % len(ids)]
            payload = encode(steady_report(datetime.now(UTC), failed=device_id in failed))
            speakers[index % 2].client.publish(
                device_topic(device_id, DeviceTopic.STATUS), payload, qos=1
            )
            sent[0] += 1
            index += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    custom = k8s.CustomObjectsApi(kube_api)
    writes_before = metric(port, "flotta_bridge_kube_writes_total")
    changes_before = change_writes(port)
    version_before = int(
        custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgedevices", limit=1)[
            "metadata"
        ]["resourceVersion"]
    )
    thread = threading.Thread(target=heartbeats, name="heartbeats")
    watcher = ChangeWatcher(kube_api, version_before)
    cpu_before = child.cpu_seconds()
    started = time.monotonic()
    thread.start()
    latencies: list[float] = []
    rng = random.Random(7)
    probe_gap = seconds / (probes + 1)
    for _ in range(probes):
        time.sleep(probe_gap)
        device_id = rng.choice([d for d in ids if d not in failed])
        failed.add(device_id)
        t0 = time.monotonic()
        speakers[0].client.publish(
            device_topic(device_id, DeviceTopic.STATUS),
            encode(steady_report(datetime.now(UTC), failed=True)),
            qos=1,
        )
        seen = watcher.wait(device_id, within=10)
        latencies.append((seen if seen is not None else time.monotonic()) - t0)
    watcher.stop()
    remaining = seconds - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    elapsed = time.monotonic() - started
    stop.set()
    thread.join()
    writes = metric(port, "flotta_bridge_kube_writes_total") - writes_before
    changes = change_writes(port) - changes_before
    version_after = int(
        custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgedevices", limit=1)[
            "metadata"
        ]["resourceVersion"]
    )
    for speaker in speakers:
        speaker.close()
    return {
        "bridge_cpu": child.cpu_seconds() - cpu_before,
        "load": os.getloadavg()[0],
        "seconds": elapsed,
        "heartbeats": sent[0],
        "writes": writes,
        "change_writes": changes,
        "api_revisions": version_after - version_before,
        "latencies": latencies,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--per-device", type=int, default=6, help="ingest messages per device")
    parser.add_argument("--steady-seconds", type=float, default=90)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="cProfile the bridge into this file")
    parser.add_argument("--ingest-only", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="bridge replicas (and baseline processes) in one shared subscription group",
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        PROFILE[:] = ["-m", "cProfile", "-o", str(args.profile)]

    workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    log(f"work directory {workdir}")
    pki = new_fleet_pki(workdir / "pki")
    broker = BenchBroker(pki, workdir / "mosquitto")
    nats_server = NatsServer(workdir / "nats", log_path=workdir / "nats.log")
    kube = LocalKube(workdir / "kube")
    ids = device_ids(args.devices)
    results: dict[str, Any] = {}
    broker.start()
    nats_server.start()
    kube.start()
    try:
        api = kube.api()
        kube.install_crds(api)
        create_namespace(api, NAMESPACE)
        started = time.monotonic()
        seen = datetime.now(UTC) - timedelta(seconds=5 * PERIOD)
        create_devices(api, ids, seen)
        log(f"{len(ids)} EdgeDevices created in {time.monotonic() - started:.1f} s")

        bridge_creds = broker.bridge()
        speaker_creds = broker.operator()
        health_port = free_port()
        common = {
            "host": broker.host,
            "port": broker.services_port,
            "ca": bridge_creds.ca,
            "cert": bridge_creds.cert,
            "key": bridge_creds.key,
            "nats_url": nats_server.url,
            "kubeconfig": kube.kubeconfig,
        }
        bridge_args = {**common, "client_id": "bench-bridge", "health_port": health_port}
        ready_file = workdir / "baseline.ready"
        baseline_args = {**common, "client_id": "bench-baseline", "ready_file": ready_file}

        if not args.ingest_only:
            child = Child(bridge_command(bridge_args), workdir / "steady.log")
            try:
                wait_ready(child, health_port, None)
                results["steady"] = run_steady(
                    child,
                    health_port,
                    api,
                    broker,
                    speaker_creds,
                    ids,
                    args.steady_seconds,
                    args.probes,
                )
            finally:
                child.stop()
            forget_session(broker, bridge_creds, "bench-bridge")
            log(json.dumps(results["steady"], default=str))
        bridges = []
        for n in range(args.replicas):
            client_id = f"bench-bridge-{n}" if args.replicas > 1 else "bench-bridge"
            port = health_port if n == 0 else free_port()
            command = bridge_command({**bridge_args, "client_id": client_id, "health_port": port})
            bridges.append(Subscriber(client_id, command, port=port))
        baselines = [
            Subscriber(
                f"bench-baseline-{n}",
                baseline_command(
                    {
                        **baseline_args,
                        "client_id": f"bench-baseline-{n}",
                        "ready_file": workdir / f"baseline-{n}.ready",
                    }
                ),
                ready_file=workdir / f"baseline-{n}.ready",
            )
            for n in range(args.replicas)
        ]
        rounds = []
        for run in range(args.rounds):
            messages = ingest_messages(ids, args.per_device, run * 2)
            bridge_rate, _, bridge_cpu = run_ingest(
                "bridge", bridges, bridge_creds, broker,
                speaker_creds, nats_server.url, messages, workdir,
            )  # fmt: skip
            asyncio.run(purge_streams(nats_server.url))
            messages = ingest_messages(ids, args.per_device, run * 2 + 1)
            base_rate, _, base_cpu = run_ingest(
                "baseline", baselines, bridge_creds, broker,
                speaker_creds, nats_server.url, messages, workdir,
            )  # fmt: skip
            asyncio.run(purge_streams(nats_server.url))
            rounds.append(
                (bridge_rate, bridge_cpu, base_rate, base_cpu, len(messages), os.getloadavg()[0])
            )
        results["ingest"] = rounds
        if args.ingest_only:
            log(repr(rounds))
            return 0

        # The same session as the ingest runs: a second session in the group would take half
        # of the messages into its offline queue.
    finally:
        kube.stop()
        nats_server.stop()
        broker.stop()
    report = render(results, args)
    print(report)
    if args.out is not None:
        args.out.write_text(report)
    return 0


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    steady = results["steady"]
    latencies = steady["latencies"]
    writes_per_s = steady["writes"] / steady["seconds"]
    heartbeats_per_s = steady["heartbeats"] / steady["seconds"]
    lines = [
        "# Bridge benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this machine ({os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, shared with other work); "
        "`benchmarks/bridge_bench.py` with real Mosquitto 2.0 (TLS, permissive test ACL: the "
        "operator identity publishes for every device), nats-server with JetStream (file "
        "storage), the local Kubernetes API and the bridge as its own process (`flotta bridge`).",
        "",
        "## 1. Ingest rate into NATS",
        "",
        f"{args.devices:,} devices, {args.per_device} messages each (1/2 heartbeats, 1/4 metrics "
        "batches, 1/6 log batches, 1/12 events), queued in the subscriber's persistent session "
        "while it is stopped, then drained: rate from the first to the last message stored in "
        "JetStream. Baseline: bare paho (network thread) -> nats-py `publish_async` with "
        "`Nats-Msg-Id`, manual MQTT ack after the JetStream ack, no validation, no envelope, "
        "no Kubernetes.",
        "",
        f"Subscribers: {args.replicas} bridge replica(s), then as many baseline processes, each "
        "group in one shared subscription (CPU per message is summed over the group).",
        "",
        "| round | messages | bridge msg/s | baseline msg/s | bridge / baseline "
        "| bridge CPU/msg | baseline CPU/msg | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, (bridge_rate, bridge_cpu, base_rate, base_cpu, count, load) in enumerate(
        results["ingest"], 1
    ):
        lines.append(
            f"| {n} | {count:,} | {bridge_rate:,.0f} | {base_rate:,.0f} "
            f"| {bridge_rate / base_rate:.2f} | {bridge_cpu * 1e6:.0f} us "
            f"| {base_cpu * 1e6:.0f} us | {load:.1f} |"
        )
    lines += [
        "",
        "Goal: at least 10,000/s and at least 0.5 of the baseline.",
        "",
        "## 2. Kubernetes writes, 10,000 devices heartbeating, nothing changing",
        "",
        f"{args.devices:,} devices, one heartbeat each every {PERIOD} s "
        f"({heartbeats_per_s:,.0f} heartbeats/s) for {steady['seconds']:.0f} s; the EdgeDevices "
        "start in the steady state with last-seen times 5 periods old, so last-seen refreshes "
        f"fall due during the run (refresh after 6 periods, at most 5/s). {args.probes} real "
        "changes were injected (section 3).",
        "",
        "| heartbeats | status writes | writes/s | of heartbeats | of which real changes "
        "| API revisions |",
        "|---|---|---|---|---|---|",
        f"| {steady['heartbeats']:,} | {steady['writes']:.0f} | {writes_per_s:.2f} | "
        f"{100 * steady['writes'] / max(steady['heartbeats'], 1):.3f} % | "
        f"{steady['change_writes']:.0f} | {steady['api_revisions']} |",
        "",
        f"Bridge CPU during this run: {steady['bridge_cpu']:.1f} s for {steady['seconds']:.0f} s "
        f"({100 * steady['bridge_cpu'] / steady['seconds']:.0f} % of one core, "
        f"{1e6 * steady['bridge_cpu'] / max(steady['heartbeats'], 1):.0f} us per heartbeat); "
        f"load average at the end {steady['load']:.1f} on {os.cpu_count()} cores.",
        "",
        "Goal: at most 10 writes/s (1 % of heartbeats). API revisions counts every write the "
        "local API stored in that time (status writes and Events), as a cross-check.",
        "",
        "## 3. A real change visible in the EdgeDevice",
        "",
        "During the run above, a device reports workload `web` Failed; time from the MQTT "
        "publish until a watch on the EdgeDevices (as `kubectl get -w`) delivers the change.",
        "",
        "| probes | median | max |",
        "|---|---|---|",
        f"| {len(latencies)} | {statistics.median(latencies) * 1000:.0f} ms | "
        f"{max(latencies) * 1000:.0f} ms |",
        "",
        "Goal: within 2 s.",
        "",
    ]
    return "\n".join(lines)


# ---- the baseline passthrough (its own process) ----------------------------------------------


def baseline(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    for name in ("--mqtt-host", "--ca", "--cert", "--key", "--client-id", "--nats-url"):
        parser.add_argument(name, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_baseline(args))
    return 0


async def _baseline(args: argparse.Namespace) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream(publish_async_max_pending=4000)
    queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue(maxsize=4000)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=args.client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    client.tls_set(ca_certs=args.ca, certfile=args.cert, keyfile=args.key)

    def on_connect(c: mqtt.Client, *rest: Any) -> None:
        topics = [
            (f"$share/bench-baseline/flotta/devices/+/{kind}", SubscribeOptions(qos=1))
            for kind in ("status", "connection", "events", "metrics", "logs")
        ]
        c.subscribe(topics)

    client.on_connect = on_connect
    client.on_subscribe = lambda *rest: args.ready_file.write_text("ready")
    client.on_message = lambda c, u, message: loop.call_soon_threadsafe(queue.put_nowait, message)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 1000
    client.connect(args.mqtt_host, args.mqtt_port, clean_start=False, properties=properties)
    client.loop_start()
    counter = 0

    async def forward() -> None:
        nonlocal counter
        while True:
            message = await queue.get()
            parts = message.topic.split("/")
            counter += 1
            future = await js.publish_async(
                f"flotta.device.bench.{parts[2]}.{parts[3]}",
                message.payload,
                headers={"Nats-Msg-Id": f"{os.getpid()}:{parts[2]}:{message.mid}:{counter}"},
            )
            future.add_done_callback(lambda done, mid=message.mid: client.ack(mid, 1))

    task = loop.create_task(forward())
    await stop.wait()
    task.cancel()
    client.disconnect()
    client.loop_stop()
    await nc.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "baseline":
        sys.exit(baseline(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))

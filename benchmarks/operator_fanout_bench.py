"""Fan-out benchmark: 10,000 EdgeDevices, one EdgeWorkload selecting all of them.

Measures, on this machine, the time from applying the EdgeWorkload (official Kubernetes
client, local Kubernetes API) until the broker (real Mosquitto, mTLS) acknowledged all
10,000 retained desired states, and compares the operator's publish rate with a bare paho-mqtt
QoS 1 publish loop (same identity, payload size, in-flight window) measured in the same run.

    .venv/bin/python benchmarks/operator_fanout_bench.py [--devices N] [--out FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import platform
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from kubernetes import client
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: where the source folders are
from tests.fixtures.sources import SOURCE_DIRS  # noqa: E402

sys.path[1:1] = [str(ROOT / folder) for folder in SOURCE_DIRS]

from flotta.operator.app import OperatorConfig  # noqa: E402
from flotta.operator.broker import BrokerSettings, enrolment_broker  # noqa: E402
from flotta.operator.context import OperatorSettings  # noqa: E402
from flotta.schemas.crd.common import API_VERSION, DEVICE_FINALIZER, GROUP, VERSION  # noqa: E402
from tests.fixtures.brokers import TestBroker, new_fleet_pki  # noqa: E402
from tests.fixtures.kubeprocess import LocalKube  # noqa: E402
from tests.operator.conftest import OperatorThread  # noqa: E402

NAMESPACE = "fleet"
PUBLISHES = "flotta_operator_publishes_total"
SAMPLE_PAYLOAD = 760  # about the size of the desired state the benchmark workload gives


def create_devices(api: client.ApiClient, count: int) -> float:
    objects = client.CustomObjectsApi(api)

    def create(index: int) -> None:
        objects.create_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "edgedevices",
            {
                "apiVersion": API_VERSION,
                "kind": "EdgeDevice",
                "metadata": {
                    "name": f"dev-{index:05d}",
                    "labels": {"fleet": "bench", "site": f"site-{index % 10}"},
                    "finalizers": [DEVICE_FINALIZER],
                },
                "spec": {},
            },
        )

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    return time.perf_counter() - start


def wait_quiet(
    running: OperatorThread, devices: int, *, settle: float = 2.0, timeout: float = 600.0
) -> None:
    """Until every device's state was published once and nothing was published or queued for
    ``settle`` seconds (API writes included)."""
    registry = running.operator.metrics.registry
    deadline = time.monotonic() + timeout
    while running.operator.context is None or not running.operator.context.synced.is_set():
        time.sleep(0.05)
    while (registry.get_sample_value(PUBLISHES) or 0.0) < devices:
        if time.monotonic() > deadline:
            raise TimeoutError("the initial publication did not finish")
        time.sleep(0.05)
    last = (-1.0, -1.0)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        sample = (
            registry.get_sample_value(PUBLISHES) or 0.0,
            sum(
                registry.get_sample_value(f"flotta_operator_{q}_depth") or 0.0
                for q in ("reconcile_queue", "publish_queue", "device_write_queue")
            ),
        )
        if sample != last or sample[1] > 0:
            last = sample
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        time.sleep(0.1)
    raise TimeoutError("the operator did not settle")


def measure_fanout(
    running: OperatorThread, api: client.ApiClient, devices: int
) -> dict[str, float]:
    registry = running.operator.metrics.registry
    baseline = registry.get_sample_value(PUBLISHES) or 0.0
    target = baseline + devices
    first = 0.0
    start = time.perf_counter()
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        {
            "apiVersion": API_VERSION,
            "kind": "EdgeWorkload",
            "metadata": {"name": "web", "labels": {"podman/app": "web"}},
            "spec": {
                "type": "pod",
                "deviceSelector": {"matchLabels": {"fleet": "bench"}},
                "pod": {
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "localhost/busybox:latest",
                                "command": ["httpd", "-f", "-p", "8080"],
                                "ports": [{"containerPort": 8080, "hostPort": 8080}],
                                "env": [{"name": "MODE", "value": "bench"}],
                            }
                        ]
                    }
                },
            },
        },
    )
    applied = time.perf_counter()
    while True:
        value = registry.get_sample_value(PUBLISHES) or 0.0
        now = time.perf_counter()
        if not first and value > baseline:
            first = now
        if value >= target:
            break
        if now - start > 300:
            raise TimeoutError(f"only {value - baseline:.0f} of {devices} acknowledged")
        time.sleep(0.002)
    end = time.perf_counter()
    return {
        "apply_call": applied - start,
        "total": end - start,
        "first_ack": first - start,
        "publish_phase": end - first,
    }


def paho_loop(
    broker: TestBroker, payload: bytes, devices: int, inflight: int, client_id: str
) -> float:
    """A bare paho QoS 1 retained publish loop: seconds until every PUBACK arrived."""
    creds = broker.operator()
    done = threading.Event()
    connected = threading.Event()
    acked = 0
    lock = threading.Lock()

    def on_publish(*_: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == devices:
                done.set()

    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(creds.ca))
    context.load_cert_chain(str(creds.cert), str(creds.key))
    paho.tls_set_context(context)
    paho.max_inflight_messages_set(inflight)
    paho.on_publish = on_publish
    paho.on_connect = lambda *_: connected.set()
    paho.connect(broker.host, broker.services_port)
    paho.loop_start()
    connected.wait(10)
    start = time.perf_counter()
    for index in range(devices):
        paho.publish(f"flotta/devices/dev-{index:05d}/desired", payload, qos=1, retain=True)
    done.wait(300)
    elapsed = time.perf_counter() - start
    paho.disconnect()
    paho.loop_stop()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    devices = args.devices
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pki = new_fleet_pki(work / "pki")
        broker = TestBroker(pki, work / "broker")
        broker.start()
        kube = LocalKube(work / "kube")
        kube.start()
        api = kube.api_client()
        running: OperatorThread | None = None
        try:
            kube.install_crds(api)
            kube.create_namespaces(api, NAMESPACE, "flotta")
            created = create_devices(api, devices)
            # A bare paho loop before the operator runs, and one after: the machine is shared,
            # so the baseline is the mean of both.
            sample = b"x" * SAMPLE_PAYLOAD
            bare_before = paho_loop(broker, sample, devices, 2000, "bench-paho-before")
            print(f"created {devices} EdgeDevices in {created:.1f} s", flush=True)
            creds = broker.operator()
            fleet_broker = BrokerSettings(
                host=broker.host,
                port=broker.services_port,
                ca=broker.ca_path,
                cert=creds.cert,
                key=creds.key,
            )
            settings = OperatorSettings(enrolment_namespace="flotta")
            running = OperatorThread(
                OperatorConfig(
                    broker=fleet_broker,
                    enrolment=enrolment_broker(
                        fleet_broker, host=broker.host, port=broker.enrolment_port
                    ),
                    pki_dir=pki.root,
                    kubeconfig=kube.kubeconfig,
                    settings=settings,
                    lease_namespace="flotta",
                    identity="bench",
                )
            )
            started = time.perf_counter()
            running.start(timeout=120)
            wait_quiet(running, devices)
            print(
                f"operator synced and settled in {time.perf_counter() - started:.1f} s", flush=True
            )
            result = measure_fanout(running, api, devices)
            print(
                f"fan-out: {result['total']:.3f} s from apply to {devices} acknowledged "
                f"(first ack {result['first_ack']:.3f} s, "
                f"publish phase {result['publish_phase']:.3f} s)",
                flush=True,
            )
            context = running.operator.context
            assert context is not None
            entry = context.ledger.current((NAMESPACE, "dev-00000"))
            assert entry is not None
            payload = entry.payload
            wait_quiet(running, devices)
            running.stop()
            running = None
            bare_after = paho_loop(
                broker, payload, devices, settings.max_in_flight, "bench-paho-after"
            )
            bare = (bare_before + bare_after) / 2
            print(f"bare paho before {bare_before:.3f} s, after {bare_after:.3f} s", flush=True)
            operator_rate = devices / result["publish_phase"]
            end_to_end_rate = devices / result["total"]
            paho_rate = devices / bare
            print(f"bare paho QoS 1 loop: {bare:.3f} s ({paho_rate:.0f} msg/s)", flush=True)
            print(
                f"operator publish rate {operator_rate:.0f} msg/s "
                f"= {operator_rate / paho_rate:.2f} of paho; "
                f"end to end {end_to_end_rate:.0f} msg/s = {end_to_end_rate / paho_rate:.2f}",
                flush=True,
            )
            if args.out:
                write_report(args.out, devices, created, result, bare, len(payload))
        finally:
            if running is not None:
                running.stop()
            api.close()
            kube.stop()
            broker.stop()
    return 0


def write_report(
    path: Path, devices: int, created: float, result: dict[str, float], bare: float, size: int
) -> None:
    operator_rate = devices / result["publish_phase"]
    paho_rate = devices / bare
    ratio = operator_rate / paho_rate
    end_to_end = devices / result["total"] / paho_rate
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    recorded = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = [
        (
            f"apply -> all {devices} retained states acknowledged",
            f"**{result['total']:.2f} s**",
            "3 s",
        ),
        ("apply -> first acknowledgement", f"{result['first_ack']:.2f} s", ""),
        ("publish phase (first to last acknowledgement)", f"{result['publish_phase']:.2f} s", ""),
        ("operator publish rate", f"{operator_rate:.0f} msg/s", ""),
        (
            "bare paho QoS 1 retained loop, same run (mean of before and after)",
            f"{bare:.2f} s, {paho_rate:.0f} msg/s",
            "",
        ),
        ("ratio operator / bare paho (publish phase)", f"**{ratio:.2f}**", ">= 0.75"),
        ("ratio end to end (apply -> last ack) / bare paho", f"{end_to_end:.2f}", ""),
    ]
    lines = [
        "# Operator fan-out benchmark",
        "",
        f"Recorded {recorded} with `benchmarks/operator_fanout_bench.py` ({machine}).",
        "Local Kubernetes API (subprocess, SQLite), Mosquitto 2.0 with mTLS and the Flotta ACL,",
        "operator in-process (its own thread and event loop).",
        "",
        f"{devices} EdgeDevices (created in {created:.1f} s), one EdgeWorkload selecting all of",
        f"them; desired state {size} bytes per device.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        *(f"| {name} | {value} | {goal} |" for name, value, goal in rows),
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

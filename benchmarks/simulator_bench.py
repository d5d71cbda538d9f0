"""The device side of a fan-out, alone: Mosquitto, the simulator and one observer, no control plane.

    .venv/bin/python benchmarks/simulator_bench.py --devices 10000 [--processes 2] [--storm]

Starts a real Mosquitto (mutual TLS, Flotta ACL, the fleet's configuration) and
``flotta dev simulate`` with N provisioned devices (every one its own key, certificate and TLS
connection), and follows them with an observer subscription on the status and connection topics.
Then it measures, with the simulator's CPU time read from /proc (user + system, all its
processes):

- steady: the fleet heartbeating with nothing changing; CPU per heartbeat;
- fan-out: a new retained desired state published (as the operator) to every device; seconds
  until the observer saw every device report it applied, and the simulator's CPU per
  acknowledged device on top of its heartbeat cost;
- broker CPU in both phases.

This splits the fleet benchmark's fan-out (``fleet_bench.py``) into the part the devices and
the broker cost, without the operator, the bridge and the Kubernetes API sharing the cores:
the floor that ``fleet_bench.py`` runs after the fleet and compares against (fan-out and storm
as ratios to it). The storm counts from the broker listening again to the last device's birth
(by the devices' timestamps), as ``fleet_bench.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for folder in ("schemas", "operator", "bridge", "agent", "mosquitto", "deploy", "."):
    sys.path.insert(0, str(ROOT / folder))

from benchmarks.fleet_bench import cpu_seconds, listen_overflows, per_second  # noqa: E402
from flotta.dev.simulator.provision import provision  # noqa: E402
from flotta.dev.simulator.shards import device_ids  # noqa: E402
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles  # noqa: E402
from flotta.schemas.codec import (  # noqa: E402
    decode,
    encode,
    with_version,
)
from flotta.schemas.errors import PayloadError  # noqa: E402
from flotta.schemas.topics import DeviceTopic, device_topic  # noqa: E402
from flotta.schemas.wire import (  # noqa: E402
    ConnectionState,
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HeartbeatConfiguration,
    StatusReport,
)
from tests.fixtures.brokers import ClientCredentials, TestBroker, new_fleet_pki  # noqa: E402

PREFIX = "simb"
NAMESPACE = "default"
RESULTS = ROOT / "benchmarks" / "results" / "simulator.md"


def tls_for(creds: ClientCredentials) -> TlsFiles:
    return TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False)


# ---- the observer: this benchmark's view of the devices ------------------------------------


def observer_client(host: str, port: int, tls: TlsFiles, client_id: str, count: int) -> MqttClient:
    """A clean-session client for an observer of ``count`` devices (reconnects quickly)."""
    return MqttClient(
        MqttSettings(
            host=host,
            port=port,
            client_id=client_id,
            tls=tls,
            clean_start=True,
            session_expiry=0,
            receive_maximum=1000,
            incoming_queue=4 * count + 1000,
            reconnect_base=0.2,
            reconnect_cap=1.0,
        )
    )


class Observer:
    """Every device's last applied version and its last birth, from an observer identity."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.applied: dict[str, str] = {}
        self.birth: dict[str, datetime] = {}
        self.statuses = 0
        self.rejected = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        await self.client.subscribe(
            [("flotta/devices/+/status", 1), ("flotta/devices/+/connection", 1)]
        )
        self._task = asyncio.ensure_future(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def _follow(self) -> None:
        async for message in self.client.messages():
            parts = message.topic.split("/")
            if len(parts) != 4 or not message.payload:
                continue
            device, kind = parts[2], parts[3]
            try:
                if kind == "status":
                    self.statuses += 1
                    self.applied[device] = decode(StatusReport, message.payload).applied_version
                elif kind == "connection":
                    state = decode(ConnectionState, message.payload)
                    if state.state == "online":
                        self.birth[device] = state.time
                        if state.applied_version:
                            self.applied[device] = state.applied_version
                    else:
                        self.birth.pop(device, None)
            except PayloadError:
                self.rejected += 1

    def births_per_second(self, since: datetime) -> list[int]:
        """Births after ``since`` in each second from it (the devices' CONNACK times)."""
        seconds = Counter(
            int((born - since).total_seconds()) for born in self.birth.values() if born >= since
        )
        return per_second(seconds)

    def count(self, predicate: Any) -> int:
        return sum(1 for version in self.applied.values() if predicate(version))

    def online_since(self, since: datetime) -> int:
        return sum(1 for t in self.birth.values() if t >= since)


def desired_payload(device_id: str, generation: int, heartbeat: int) -> tuple[str, bytes]:
    state = with_version(
        DesiredState(
            device_id=device_id,
            namespace=NAMESPACE,
            configuration=DesiredConfiguration(
                heartbeat=HeartbeatConfiguration(period_seconds=heartbeat)
            ),
            workloads=[
                DesiredWorkload(
                    name="app",
                    namespace=NAMESPACE,
                    pod_spec={"containers": [{"name": "app", "image": f"app:{generation}"}]},
                )
            ],
        )
    )
    return state.version, encode(state)


async def wait_until(check: Any, limit: float, what: str) -> float:
    start = time.perf_counter()
    shown = start
    while not check():
        now = time.perf_counter()
        if now - start > limit:
            raise TimeoutError(f"{what}: not done after {limit:.0f} s")
        if now - shown > 5:
            print(f"  {what}: still waiting after {now - start:.0f} s", flush=True)
            shown = now
        await asyncio.sleep(0.05)
    return time.perf_counter() - start


class CpuWindow:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.began = time.perf_counter()

    def end(self) -> tuple[float, dict[str, float]]:
        elapsed = time.perf_counter() - self.began
        return elapsed, {n: cpu_seconds(p) - self.start[n] for n, p in self.pids.items()}


async def publish_all(
    client: MqttClient, ids: list[str], generation: int, heartbeat: int
) -> dict[str, str]:
    """Every device's new desired state, published as the operator does (callbacks, no task
    per message), so this floor's publisher is no slower than the operator's."""
    payloads = {device_id: desired_payload(device_id, generation, heartbeat) for device_id in ids}
    loop = asyncio.get_running_loop()
    all_done: asyncio.Future[None] = loop.create_future()
    remaining = len(ids)
    errors: list[BaseException] = []

    def done(error: BaseException | None) -> None:
        nonlocal remaining
        if error is not None:
            errors.append(error)
        remaining -= 1
        if remaining == 0 and not all_done.done():
            all_done.set_result(None)

    for device_id, (_, payload) in payloads.items():
        client.publish_callback(
            device_topic(device_id, DeviceTopic.DESIRED), payload, retain=True, done=done
        )
    if ids:
        await all_done
    if errors:
        raise errors[0]
    return {device_id: version for device_id, (version, _) in payloads.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="simulator-bench-"))
    pki = new_fleet_pki(work / "pki")
    broker = TestBroker(pki, work / "broker")
    ids = device_ids(PREFIX, args.devices)
    result: dict[str, Any] = {"devices": args.devices, "processes": args.processes}
    simulator: subprocess.Popen[bytes] | None = None
    observer: Observer | None = None
    operator: MqttClient | None = None
    try:
        broker.start()
        started = time.perf_counter()
        provision(pki, work / "devices", ids, namespace=NAMESPACE)
        print(f"provisioned {len(ids)} devices in {time.perf_counter() - started:.1f} s")
        observer_tls = tls_for(broker.observer("bench"))
        observer = Observer(
            observer_client(broker.host, broker.port, observer_tls, "observer-bench", len(ids))
        )
        await observer.start()
        operator = observer_client(
            broker.host, broker.services_port, tls_for(broker.operator()), "operator-bench", 0
        )
        await operator.connect()
        versions = await publish_all(operator, ids, 0, int(args.heartbeat))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            str(ROOT / f) for f in ("schemas", "operator", "bridge", "agent", "mosquitto", "deploy")
        )
        simulator = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
            [
                sys.executable, "-m", "flotta.cli", "dev", "simulate",
                "--state-dir", str(work / "devices"), "--devices", str(args.devices),
                "--prefix", PREFIX, "--mqtt-port", str(broker.port), "--ca", str(broker.ca_path),
                "--namespace", NAMESPACE, "--metrics-interval", "0",
                "--heartbeat", str(args.heartbeat), "--connect-spread", str(args.spread),
                "--processes", str(args.processes), "--pki-dir", str(pki.root),
                "--concurrent-connects", str(args.concurrent_connects),
            ],
            env=env,
        )  # fmt: skip
        pids = {"simulator": simulator.pid, "mosquitto": broker.process.pid}
        result["connect_s"] = await wait_until(
            lambda: len(observer.birth) >= len(ids), args.timeout, "online"
        )
        await wait_until(
            lambda: all(observer.applied.get(i) == versions[i] for i in ids),
            args.timeout,
            "initial version",
        )
        print(f"all {len(ids)} online in {result['connect_s']:.1f} s", flush=True)
        await asyncio.sleep(args.heartbeat)  # the connect-time work settles
        beats = observer.statuses
        window = CpuWindow(pids)
        await asyncio.sleep(args.window)
        elapsed, cpu = window.end()
        heartbeats = observer.statuses - beats
        result["heartbeats_per_s"] = heartbeats / elapsed
        result["steady_cores"] = {n: c / elapsed for n, c in cpu.items()}
        result["sim_us_per_heartbeat"] = 1e6 * cpu["simulator"] / max(1, heartbeats)
        print(
            f"steady: {result['heartbeats_per_s']:.0f} heartbeats/s, simulator "
            f"{result['sim_us_per_heartbeat']:.0f} us CPU per heartbeat",
            flush=True,
        )
        fanouts: list[float] = []
        sim_per_ack: list[float] = []
        broker_per_ack: list[float] = []
        for generation in range(1, args.rounds + 1):
            await asyncio.sleep(1.0)
            window = CpuWindow(pids)
            beats = observer.statuses
            start = time.perf_counter()
            versions = await publish_all(operator, ids, generation, args.heartbeat)
            published = time.perf_counter() - start
            fanout = published + await wait_until(
                lambda wanted=versions: all(observer.applied.get(i) == wanted[i] for i in ids),
                args.timeout,
                "fan-out",
            )
            elapsed, cpu = window.end()
            acks = len(ids)
            beats_during = observer.statuses - beats - acks
            heartbeat_cpu = beats_during * result["sim_us_per_heartbeat"] / 1e6
            fanouts.append(fanout)
            sim_per_ack.append(1e6 * max(0.0, cpu["simulator"] - heartbeat_cpu) / acks)
            broker_per_ack.append(1e6 * cpu["mosquitto"] / acks)
            result["fanout_cores"] = {n: c / elapsed for n, c in cpu.items()}
            print(
                f"fan-out {generation}: all {acks} acknowledged in {fanout:.2f} s (published in "
                f"{published:.2f} s); simulator {sim_per_ack[-1]:.0f} us CPU per acknowledgement",
                flush=True,
            )
        result["fanout_s"] = statistics.median(fanouts)
        result["fanouts"] = fanouts
        result["sim_us_per_ack"] = statistics.median(sim_per_ack)
        result["broker_us_per_ack"] = statistics.median(broker_per_ack)
        if args.storm:
            await asyncio.sleep(2.0)
            await operator.close()
            operator = None
            since = datetime.now(UTC)
            window = CpuWindow(pids)
            overflows = listen_overflows()
            start = time.perf_counter()
            broker.restart()
            result["broker_restart_s"] = time.perf_counter() - start
            restarted = datetime.now(UTC)
            pids["mosquitto"] = broker.process.pid
            window.start["mosquitto"] = 0.0
            result["storm_seen_s"] = (
                await wait_until(
                    lambda: observer.online_since(since) >= len(ids),
                    args.timeout,
                    "storm",
                )
                + result["broker_restart_s"]
            )
            # As fleet_bench.py counts it: from the broker listening again to the last birth,
            # by the devices' own timestamps.
            last_birth = max(t for t in observer.birth.values() if t >= since)
            result["storm_s"] = max(0.0, (last_birth - restarted).total_seconds())
            elapsed, cpu = window.end()
            result["storm_cores"] = {n: c / elapsed for n, c in cpu.items()}
            result["sim_ms_per_reconnect"] = 1e3 * cpu["simulator"] / len(ids)
            result["broker_ms_per_reconnect"] = 1e3 * cpu["mosquitto"] / len(ids)
            result["storm_births"] = observer.births_per_second(since)
            result["storm_listen_overflows"] = listen_overflows() - overflows
            print(
                f"storm: births per second {result['storm_births']}; "
                f"{result['storm_listen_overflows']} connections dropped by a full listen queue",
                flush=True,
            )
            print(
                f"storm: all {len(ids)} back {result['storm_s']:.1f} s after the broker was "
                f"(restart {result['broker_restart_s']:.1f} s, all seen after "
                f"{result['storm_seen_s']:.1f} s); simulator "
                f"{result['sim_ms_per_reconnect']:.2f} ms, broker "
                f"{result['broker_ms_per_reconnect']:.2f} ms CPU per reconnect",
                flush=True,
            )
    finally:
        if operator is not None:
            await operator.close()
        if observer is not None:
            await observer.close()
        if simulator is not None:
            simulator.terminate()
            try:
                simulator.wait(30)
            except subprocess.TimeoutExpired:
                simulator.kill()
                simulator.wait()
        broker.stop()
    return result


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]

    def cores(phase: str) -> str:
        shares = result.get(f"{phase}_cores", {})
        return ", ".join(f"{name} {value:.2f}" for name, value in shares.items())

    fanouts = " / ".join(f"{f:.2f}" for f in result["fanouts"])
    storm = (
        f"{result['storm_s']:.1f} | {result['sim_ms_per_reconnect']:.2f} | "
        f"{result['broker_ms_per_reconnect']:.2f}"
        if "storm_s" in result
        else "- | - | -"
    )
    return (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {args.label} | {result['devices']} | "
        f"{result['heartbeats_per_s']:.0f} | {result['sim_us_per_heartbeat']:.0f} | "
        f"{result['fanout_s']:.2f} ({fanouts}) | {result['sim_us_per_ack']:.0f} | "
        f"{result['broker_us_per_ack']:.0f} | {storm} | steady: {cores('steady')}; "
        f"fan-out: {cores('fanout')}; storm: {cores('storm')} | {load:.1f} |\n"
    )


HEADER = (
    "| run (UTC) | label | devices | heartbeats/s | simulator CPU per heartbeat (us) "
    "| fan-out: all acknowledged, median (rounds) (s) | simulator CPU per ack (us) "
    "| broker CPU per ack (us) | storm: all back (s) | simulator CPU per reconnect (ms) "
    "| broker CPU per reconnect (ms) | cores | load at end |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--heartbeat", type=int, default=10, help="seconds")
    parser.add_argument("--spread", type=float, default=40.0, help="connect spread, seconds")
    parser.add_argument("--window", type=float, default=30.0, help="steady window, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="fan-outs; the median is shown")
    parser.add_argument("--storm", action="store_true", help="then restart the broker")
    parser.add_argument(
        "--concurrent-connects",
        type=int,
        default=16,
        help="connections the simulator opens at once, per process",
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--label", default="", help="what this run measures (for the table)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the broker
    result = asyncio.run(run(args))
    line = report(result, args)
    if not args.out.exists():
        args.out.write_text(
            "# Simulator and broker alone: the device side of a fan-out\n\n"
            f"`benchmarks/simulator_bench.py` on {platform.node() or 'this machine'} "
            f"({os.cpu_count()} cores, Python {platform.python_version()}).\n\n" + HEADER
        )
    with args.out.open("a") as handle:
        handle.write(line)
    print(line, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The device side of a fan-out and a storm, alone: Mosquitto, the simulator and a bare publisher.

    .venv/bin/python benchmarks/simulator_bench.py --devices 10000 [--processes 2] [--storm]

Starts a real Mosquitto (mutual TLS, Flotta ACL, the fleet's configuration) and
``flotta dev simulate --report FILE`` with N provisioned devices (every one its own key,
certificate and TLS connection), with no operator, bridge or Kubernetes API. The desired states
come from ``bare_publisher.py``, a bare paho QoS 1 publisher in its own process standing in for
the operator (its payloads encoded before the clock starts). Then it measures, with CPU time
read from /proc (user + system, all of a component's processes):

- steady: the fleet heartbeating with nothing changing; CPU per heartbeat (heartbeats counted
  by an observer subscription to the status topics, connected for this window only);
- fan-out: a new retained desired state published to every device; seconds from the first
  publish until the last device's status reporting the new version was acknowledged by the
  broker, by the devices' own clock (the simulator's report, ``flotta.dev.simulator.report``;
  the same machine clock as the benchmark's), and the simulator's CPU per acknowledged device
  on top of its heartbeat cost;
- storm (``--storm``): Mosquitto restarted; seconds from it listening again to the last
  device's acknowledged birth, by the devices' clock; CPU per reconnect;
- broker CPU in each phase.

This is the floor that ``fleet_bench.py`` runs after the fleet and compares against: fan-out
and storm are defined the same way in both (``fleet_bench.fanout_seconds``, and the storm from
the broker listening again to the last birth), so the ratios compare like with like. Nothing in
this process follows the devices' messages during the fan-out or the storm (until 2026-12-07 an
observer of every device's status shared the publisher's event loop, and publishing alone took
7-9 s at 10,000 devices).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: where the source folders are
from tests.fixtures.sources import SOURCE_DIRS, source_path  # noqa: E402

sys.path[1:1] = [str(ROOT / folder) for folder in SOURCE_DIRS]

from benchmarks.fleet_bench import (  # noqa: E402
    births_per_second,
    cpu_seconds,
    fanout_seconds,
    fleet_report,
    listen_overflows,
    wait_for,
)
from flotta.dev.simulator.provision import provision  # noqa: E402
from flotta.dev.simulator.report import FleetReport  # noqa: E402
from flotta.dev.simulator.shards import device_ids  # noqa: E402
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles  # noqa: E402
from flotta.mqtt.client import RetainHandling  # noqa: E402
from tests.fixtures.brokers import ClientCredentials, TestBroker, new_fleet_pki  # noqa: E402

PREFIX = "simb"
NAMESPACE = "default"
RESULTS = ROOT / "benchmarks" / "results" / "simulator.md"
PUBLISHER = ROOT / "benchmarks" / "bare_publisher.py"


def tls_for(creds: ClientCredentials) -> TlsFiles:
    return TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False)


# ---- the publisher: a bare one, in its own process ----------------------------------------


class BarePublisher:
    """``bare_publisher.py`` as a child process, driven line by line."""

    def __init__(self, process: asyncio.subprocess.Process, limit: float) -> None:
        self.process = process
        self.limit = limit  # seconds for an answer

    @classmethod
    async def start(cls, broker: TestBroker, args: argparse.Namespace) -> BarePublisher:
        creds = broker.operator()
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(PUBLISHER),
            "--host", broker.host, "--port", str(broker.services_port),
            "--ca", str(creds.ca), "--cert", str(creds.cert), "--key", str(creds.key),
            "--prefix", PREFIX, "--devices", str(args.devices), "--namespace", NAMESPACE,
            "--heartbeat", str(int(args.heartbeat)), "--timeout", str(args.timeout),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process, args.timeout)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _ask(self, command: str, answer: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()
        line = (await asyncio.wait_for(self.process.stdout.readline(), self.limit)).decode()
        if not line.startswith(answer):
            raise RuntimeError(f"the bare publisher answered {command!r} with {line.strip()!r}")
        return line.removeprefix(answer).strip()

    async def prepare(self, generation: int) -> None:
        """Every device's desired state of ``generation``, encoded and ready to go."""
        await self._ask(f"prepare {generation}", "ready")

    async def go(self) -> float:
        """Publish what was prepared; seconds until the broker acknowledged all of it."""
        return float(await self._ask("go", "published"))

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# ---- heartbeats: counted by an observer, in the steady window only -------------------------


async def count_heartbeats(
    broker: TestBroker, creds: ClientCredentials, devices: int, seconds: float, pids: dict[str, int]
) -> tuple[int, float, dict[str, float]]:
    """Status messages the devices sent in ``seconds`` (not the retained ones), counted from
    the moment the subscription stands: the count, the seconds, and the CPU of ``pids`` over
    those same seconds."""
    client = MqttClient(
        MqttSettings(
            host=broker.host,
            port=broker.port,
            client_id="observer-bench",
            tls=tls_for(creds),
            clean_start=True,
            session_expiry=0,
            receive_maximum=1000,
            incoming_queue=4 * devices + 1000,
        )
    )
    statuses = 0

    async def follow() -> None:
        nonlocal statuses
        async for _ in client.messages():
            statuses += 1

    await client.connect()
    await client.subscribe(
        [("flotta/devices/+/status", 1)], retain_handling=RetainHandling.DO_NOT_SEND
    )
    following = asyncio.ensure_future(follow())
    window = CpuWindow(pids)
    try:
        await asyncio.sleep(seconds)
        elapsed, cpu = window.end()
        return statuses, elapsed, cpu
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await client.close()


def broker_pid(broker: TestBroker) -> int:
    pid = broker.process.pid
    if pid is None:
        raise RuntimeError("Mosquitto is not running")
    return pid


class CpuWindow:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.began = time.perf_counter()

    def end(self) -> tuple[float, dict[str, float]]:
        elapsed = time.perf_counter() - self.began
        return elapsed, {n: cpu_seconds(p) - self.start[n] for n, p in self.pids.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="simulator-bench-"))
    pki = new_fleet_pki(work / "pki")
    broker = TestBroker(pki, work / "broker")
    ids = device_ids(PREFIX, args.devices)
    devices = len(ids)
    report_file = work / "simulator-report.json"
    result: dict[str, Any] = {"devices": args.devices, "processes": args.processes}
    simulator: subprocess.Popen[bytes] | None = None
    publisher: BarePublisher | None = None

    def report() -> FleetReport:
        if simulator is not None and simulator.poll() is not None:
            raise RuntimeError(f"the simulator exited with {simulator.returncode}")
        return fleet_report(report_file, args.processes)

    try:
        broker.start()
        started = time.perf_counter()
        provision(pki, work / "devices", ids, namespace=NAMESPACE)
        print(f"provisioned {devices} devices in {time.perf_counter() - started:.1f} s")
        observer_creds = broker.observer("bench")
        publisher = await BarePublisher.start(broker, args)
        await publisher.prepare(0)
        await publisher.go()  # the states the devices find when they connect
        env = dict(os.environ)
        env["PYTHONPATH"] = source_path()
        since = time.time()
        simulator = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
            [
                sys.executable, "-m", "flotta.cli", "dev", "simulate",
                "--state-dir", str(work / "devices"), "--devices", str(args.devices),
                "--prefix", PREFIX, "--mqtt-port", str(broker.port), "--ca", str(broker.ca_path),
                "--namespace", NAMESPACE, "--metrics-interval", "0",
                "--heartbeat", str(args.heartbeat), "--connect-spread", str(args.spread),
                "--processes", str(args.processes), "--pki-dir", str(pki.root),
                "--concurrent-connects", str(args.concurrent_connects),
                "--report", str(report_file),
            ],
            env=env,
        )  # fmt: skip
        pids = {
            "simulator": simulator.pid,
            "mosquitto": broker_pid(broker),
            "publisher": publisher.pid,
        }
        result["connect_s"] = await wait_for(
            lambda: report().online_since(since), devices, args.timeout, "online"
        )
        await wait_for(
            lambda: devices - report().unreported, devices, args.timeout, "initial version"
        )
        print(f"all {devices} online in {result['connect_s']:.1f} s", flush=True)
        await asyncio.sleep(args.heartbeat)  # the connect-time work settles
        heartbeats, elapsed, cpu = await count_heartbeats(
            broker, observer_creds, devices, args.window, pids
        )
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
            await publisher.prepare(generation)
            await asyncio.sleep(1.0)
            window = CpuWindow(pids)
            start_wall = time.time()
            published = await publisher.go()
            await wait_for(
                lambda since=start_wall: report().changed_since(since),
                devices,
                args.timeout,
                "fan-out",
            )
            elapsed, cpu = window.end()
            fanout = fanout_seconds(report(), start_wall)
            # The heartbeats that fell in the window, at the steady rate, are not the fan-out's.
            heartbeat_cpu = result["heartbeats_per_s"] * elapsed * result["sim_us_per_heartbeat"]
            fanouts.append(fanout)
            sim_per_ack.append(max(0.0, 1e6 * cpu["simulator"] - heartbeat_cpu) / devices)
            broker_per_ack.append(1e6 * cpu["mosquitto"] / devices)
            result["fanout_cores"] = {n: c / elapsed for n, c in cpu.items()}
            print(
                f"fan-out {generation}: all {devices} acknowledged in {fanout:.2f} s (published "
                f"in {published:.2f} s); simulator {sim_per_ack[-1]:.0f} us CPU per "
                "acknowledgement",
                flush=True,
            )
        result["fanout_s"] = statistics.median(fanouts)
        result["fanouts"] = fanouts
        result["sim_us_per_ack"] = statistics.median(sim_per_ack)
        result["broker_us_per_ack"] = statistics.median(broker_per_ack)
        if args.storm:
            await publisher.close()
            publisher = None
            del pids["publisher"]
            await asyncio.sleep(2.0)
            window = CpuWindow(pids)
            overflows = listen_overflows()
            since = time.time()
            start = time.perf_counter()
            broker.restart()
            result["broker_restart_s"] = time.perf_counter() - start
            restarted = time.time()
            pids["mosquitto"] = broker_pid(broker)
            window.start["mosquitto"] = 0.0
            result["storm_seen_s"] = (
                await wait_for(lambda: report().online_since(since), devices, args.timeout, "storm")
                + result["broker_restart_s"]
            )
            elapsed, cpu = window.end()
            # As fleet_bench.py counts it: from the broker listening again to the last birth,
            # by the devices' own timestamps.
            storm = report()
            result["storm_s"] = max(0.0, storm.last_birth - restarted)
            result["storm_cores"] = {n: c / elapsed for n, c in cpu.items()}
            result["sim_ms_per_reconnect"] = 1e3 * cpu["simulator"] / devices
            result["broker_ms_per_reconnect"] = 1e3 * cpu["mosquitto"] / devices
            result["storm_births"] = births_per_second(storm, restarted)
            result["storm_listen_overflows"] = listen_overflows() - overflows
            print(
                f"storm: births per second {result['storm_births']}; "
                f"{result['storm_listen_overflows']} connections dropped by a full listen queue",
                flush=True,
            )
            print(
                f"storm: all {devices} back {result['storm_s']:.1f} s after the broker was "
                f"(restart {result['broker_restart_s']:.1f} s, all seen after "
                f"{result['storm_seen_s']:.1f} s); simulator "
                f"{result['sim_ms_per_reconnect']:.2f} ms, broker "
                f"{result['broker_ms_per_reconnect']:.2f} ms CPU per reconnect",
                flush=True,
            )
    finally:
        if publisher is not None:
            await publisher.close()
        if simulator is not None:
            simulator.terminate()
            try:
                simulator.wait(30)
            except subprocess.TimeoutExpired:
                simulator.kill()
                simulator.wait()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)  # 10,000 devices' keys and certificates
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

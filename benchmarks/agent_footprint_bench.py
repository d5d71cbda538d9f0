"""Footprint of the device agent: resident memory and CPU with three workloads running in
steady state, and the time from start to workloads running from the persisted state offline.

Real components: Mosquitto with mTLS (fleet PKI), an isolated Podman with a local busybox
image, the agent as its own process (``python -m flotta.agent run``), the control plane's part
played by tests/agent/fleet_peer.py. Run from the repository root:

    .venv/bin/python benchmarks/agent_footprint_bench.py [--steady 60] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: fixtures shared with the test suite


from flotta.agent.config import build_config  # noqa: E402
from flotta.agent.runtime import PodmanRuntime  # noqa: E402
from flotta.agent.status_file import read_status  # noqa: E402
from flotta.dev.podman import (  # noqa: E402
    BUSYBOX_IMAGE,
    PodmanService,
    build_busybox_image,
    remove_all_pods,
    write_config,
)
from flotta.schemas.wire import (  # noqa: E402
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HealthGate,
)
from flotta.schemas.wire.desired import (  # noqa: E402
    HeartbeatConfiguration,
    MetricsSettings,
    SystemMetricsSettings,
)
from tests.agent.fleet_peer import FleetPeer, phases, wait_for  # noqa: E402
from tests.agent.test_agent_process import write_toml  # noqa: E402
from tests.fixtures.brokers import TestBroker, new_fleet_pki  # noqa: E402
from tests.fixtures.sources import source_path  # noqa: E402

REPO = ROOT
DEVICE = "bench-1"
WORKLOADS = ("web", "db", "cache")
SERVE = "trap 'exit 0' TERM; while :; do sleep 5; done"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, int]:
    """kB: VmRSS, RssAnon, RssFile from /proc/pid/status; Pss from smaps_rollup."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            values["Pss"] = int(line.split()[1])
    return values


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def desired(image: str) -> DesiredState:
    workloads = [
        DesiredWorkload(
            name=name,
            namespace="default",
            pod_spec={
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": image, "command": ["sh", "-c", SERVE]}],
            },
        )
        for name in WORKLOADS
    ]
    return DesiredState(
        device_id=DEVICE,
        namespace="default",
        configuration=DesiredConfiguration(
            heartbeat=HeartbeatConfiguration(period_seconds=60),
            metrics=MetricsSettings(system=SystemMetricsSettings(interval=60)),
            # No stabilisation wait: enrol_to_running_s stays comparable with earlier runs.
            health=HealthGate(stabilization_seconds=0),
        ),
        workloads=workloads,
    )


class AgentProcess:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> int:
        env = dict(
            os.environ,
            PYTHONPATH=source_path(),
            MALLOC_ARENA_MAX="2",
        )
        with self.log_path.open("ab") as log:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "flotta.agent", "--log-level", "WARNING"),
                    *("run", "--config", str(self.config_path)),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def all_running(runtime: PodmanRuntime) -> bool:
    states = await runtime.phases()
    return set(states) == set(WORKLOADS) and all(s.phase == "Running" for s in states.values())


async def bench(steady: float, warmup: float) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    environment = write_config(work / "podman")
    service = PodmanService(environment, private_network=True)
    build_busybox_image(environment)
    service.start()
    broker = TestBroker(new_fleet_pki(work / "pki"), work / "mosquitto")
    broker.start()
    bootstrap = broker.bootstrap("bench")
    config = build_config(
        {
            "device_id": DEVICE,
            "state_dir": str(work / "agent"),
            "files_root": str(work / "files"),
            "broker_url": f"mqtts://{broker.host}:{broker.port}",
            "enrolment_url": f"mqtts://{broker.host}:{broker.enrolment_port}",
            "ca_cert": str(broker.ca_path),
            "bootstrap_cert": str(bootstrap.cert),
            "bootstrap_key": str(bootstrap.key),
            "podman_socket": environment.socket_url,
            "rpm_ostree": "/nonexistent/rpm-ostree",
            "reconnect_base_seconds": 0.5,
            "reconnect_cap_seconds": 2.0,
        }
    )
    agent = AgentProcess(write_toml(config, work / "agent.toml"), work / "agent.log")
    runtime = PodmanRuntime.from_url(environment.socket_url, files_root=work / "probe")
    results: dict[str, object] = {}
    try:
        async with FleetPeer(broker) as fleet:
            pid = agent.start()
            await wait_for(lambda: fleet.enrolments, 60)
            state = await fleet.publish_desired(desired(BUSYBOX_IMAGE))
            await fleet.wait_status(
                lambda s: (
                    s.applied_version == state.version
                    and phases(s) == dict.fromkeys(WORKLOADS, "Running")
                ),
                within=120,
            )
            results["enrol_to_running_s"] = round(time.monotonic() - agent.started, 2)
            results["VmRSS_after_enrolment_mib"] = round(memory(pid)["VmRSS"] / 1024, 1)
            # Steady state of a device's ordinary life: enrolled once, restarted since.
            agent.stop()
            seen = len(fleet.statuses)
            pid = agent.start()
            await fleet.wait_status(
                lambda s: (
                    fleet.statuses.index(s) >= seen
                    and phases(s) == dict.fromkeys(WORKLOADS, "Running")
                ),
                within=120,
            )
            await asyncio.sleep(warmup)
            samples: list[dict[str, int]] = []
            cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
            while time.monotonic() - wall_start < steady:
                samples.append(memory(pid))
                await asyncio.sleep(1.0)
            cpu = (cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
            for key in ("VmRSS", "RssAnon", "RssFile", "Pss"):
                values = [s[key] for s in samples]
                results[f"{key}_median_mib"] = round(statistics.median(values) / 1024, 1)
                results[f"{key}_max_mib"] = round(max(values) / 1024, 1)
            results["VmHWM_mib"] = round(samples[-1]["VmHWM"] / 1024, 1)
            results["idle_cpu_percent"] = round(cpu * 100, 2)
            results["threads"] = threads(pid)
            results["steady_seconds"] = steady
            agent.stop()

        # Offline start: broker down, pods gone, only the persisted desired state.
        broker.stop()
        remove_all_pods(environment)
        agent.start()
        while not await all_running(runtime):
            if time.monotonic() - agent.started > 180:
                raise RuntimeError("workloads not running from the persisted state")
            await asyncio.sleep(0.05)
        results["offline_start_to_running_s"] = round(time.monotonic() - agent.started, 2)
        status = read_status(config.state_dir)
        results["offline_connected"] = status.connected if status else None
        # Offline start with the pods still there (a restart of the agent alone).
        agent.stop()
        agent.start()
        while True:
            status = read_status(config.state_dir)
            if (
                status is not None
                and agent.process is not None
                and status.pid == agent.process.pid
                and status.applied_version == state.version
            ):
                break
            if time.monotonic() - agent.started > 120:
                raise RuntimeError("the restarted agent did not re-apply the state")
            await asyncio.sleep(0.05)
        results["offline_restart_to_applied_s"] = round(time.monotonic() - agent.started, 2)
    finally:
        agent.stop()
        broker.stop()
        remove_all_pods(environment)
        service.stop()
    return results


def markdown(results: dict[str, object]) -> str:
    lines = [
        "| measure | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in results.items()),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of sampling")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before sampling")
    parser.add_argument("--write", action="store_true", help="append to benchmarks/results")
    args = parser.parse_args()
    results = asyncio.run(bench(args.steady, args.warmup))
    table = markdown(results)
    print(table)
    if args.write:
        header = (
            f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"Python {platform.python_version()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs (shared with other work)\n\n"
        )
        with (REPO / "benchmarks/results/agent.md").open("a") as handle:
            handle.write(header + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The agent as a process (``python -m flotta.agent run``): killed in the middle of applying,
restarted while the broker is down, it runs its workloads from the persisted state, then
reports once the broker is back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotta.agent.config import AgentConfig
from flotta.agent.status_file import read_status
from tests.agent.conftest import AgentConfigFactory
from tests.agent.fleet_peer import FleetPeer, phases, wait_for
from tests.agent.test_agent_podman import desired, pods, workload
from tests.fixtures.brokers import TestBroker
from tests.fixtures.podman import PodmanTestEnv
from tests.fixtures.sources import source_path

pytestmark = [pytest.mark.podman, pytest.mark.slow]


def write_toml(config: AgentConfig, path: Path) -> Path:
    lines = []
    for key in (
        "device_id",
        "state_dir",
        "files_root",
        "broker_url",
        "enrolment_url",
        "ca_cert",
        "bootstrap_cert",
        "bootstrap_key",
        "podman_socket",
        "rpm_ostree",
    ):
        lines.append(f'{key} = "{getattr(config, key)}"')
    for key in (
        "heartbeat_seconds",
        "resync_seconds",
        "reconnect_base_seconds",
        "reconnect_cap_seconds",
        "keepalive_seconds",
        "telemetry_max_mib",
    ):
        lines.append(f"{key} = {getattr(config, key)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class AgentProcess:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=source_path())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flotta.agent", "run", "--config", str(self.config_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


@pytest.fixture
def agent_process(
    agent_config: AgentConfigFactory, tmp_path: Path
) -> Iterator[tuple[AgentConfig, AgentProcess]]:
    config = agent_config()
    process = AgentProcess(write_toml(config, tmp_path / "agent.toml"), tmp_path / "agent.log")
    try:
        yield config, process
    finally:
        process.terminate()


async def test_killed_mid_apply_restarts_offline_from_the_persisted_state_and_converges(
    agent_process: tuple[AgentConfig, AgentProcess],
    fleet: FleetPeer,
    mosquitto_broker: TestBroker,
    clean_podman: PodmanTestEnv,
) -> None:
    config, process = agent_process
    process.start()
    await wait_for(lambda: fleet.enrolments, 30)
    names = ("alpha", "beta", "gamma")
    state = await fleet.publish_desired(
        desired(*(workload(name, clean_podman.image) for name in names))
    )

    # SIGKILL as soon as the first pod exists: the others are still being applied.
    for _ in range(3000):
        if await pods(clean_podman):
            break
        await asyncio.sleep(0.02)
    process.kill()
    assert (config.state_dir / "desired.json").exists()  # persisted before acting

    # The broker is down: the restarted agent re-applies the persisted state on its own.
    mosquitto_broker.stop()
    process.start()

    async def all_running() -> bool:
        running = await pods(clean_podman)
        status = read_status(config.state_dir)
        return (
            set(running) == set(names)
            and status is not None
            and status.applied_version == state.version
            and {w.name: w.phase for w in status.workloads} == dict.fromkeys(names, "Running")
        )

    deadline = asyncio.get_running_loop().time() + 90
    while not await all_running():
        assert asyncio.get_running_loop().time() < deadline, process.log_path.read_text()[-3000:]
        await asyncio.sleep(0.2)
    status = read_status(config.state_dir)
    assert status is not None
    assert not status.connected

    # Broker back: the device reports the applied version and the phases.
    mosquitto_broker.start()
    await fleet.wait_status(
        lambda s: (
            s.applied_version == state.version and phases(s) == dict.fromkeys(names, "Running")
        ),
        within=60,
    )
    assert process.terminate() == 0

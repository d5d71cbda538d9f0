"""Safe rollouts on a real device: real agent, real Podman, real Mosquitto (mTLS + ACL).

A bad version (a container that exits at once, a failing health check, an image that cannot
be pulled) ends with the previous pods running and the version reported failed with its
reason, online or offline; a SIGKILL in the middle of a rollback ends consistent after the
restart; a version waits for its update window."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flotta.agent.cli import render_status
from flotta.agent.config import AgentConfig
from flotta.agent.daemon import Agent
from flotta.agent.rollout_journal import RolloutJournal
from flotta.agent.status_file import read_status
from flotta.schemas.wire import (
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HealthGate,
    HeartbeatConfiguration,
    StatusReport,
    UpdateSchedule,
)
from tests.agent.conftest import AgentConfigFactory
from tests.agent.fleet_peer import FleetPeer, phases, wait_for
from tests.agent.test_agent_podman import SERVE, RunningAgent, pods
from tests.agent.test_agent_process import AgentProcess, write_toml
from tests.fixtures.brokers import TestBroker
from tests.fixtures.podman import PodmanTestEnv

pytestmark = [pytest.mark.podman, pytest.mark.slow]

DEVICE = "edge-1"
GATE = HealthGate(stabilization_seconds=2, timeout_seconds=40)
UNPULLABLE = "127.0.0.1:1/none/missing:1"


def pod(image: str, command: str = SERVE, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image, "command": ["sh", "-c", command]}
    container.update(extra.pop("container", {}))
    return {"terminationGracePeriodSeconds": 1, "containers": [container], **extra}


# The bad versions below fail a few seconds after starting: their gate waits longer, with room
# for a loaded machine (probes run late there); a failure ends the gate early, so it costs
# nothing.
SLOW_GATE = HealthGate(stabilization_seconds=30, timeout_seconds=60)


def state(
    workloads: dict[str, dict[str, Any]],
    *,
    schedule: UpdateSchedule | None = None,
    gates: dict[str, HealthGate] | None = None,
) -> DesiredState:
    return DesiredState(
        device_id=DEVICE,
        namespace="default",
        configuration=DesiredConfiguration(
            heartbeat=HeartbeatConfiguration(period_seconds=1),
            health=GATE,
            update_schedule=schedule,
        ),
        workloads=[
            DesiredWorkload(
                name=name, namespace="default", pod_spec=spec, health=(gates or {}).get(name)
            )
            for name, spec in workloads.items()
        ],
    )


async def spec_hashes(env: PodmanTestEnv) -> dict[str, str]:
    return {name: found.spec_hash for name, found in (await pods(env)).items()}


async def good_then(
    fleet: FleetPeer,
    env: PodmanTestEnv,
    bad: dict[str, dict[str, Any]],
    gates: dict[str, HealthGate] | None = None,
) -> tuple[DesiredState, dict[str, str], DesiredState]:
    """Version 1 (two workloads) applied healthy, then ``bad`` merged over it published."""
    good = await fleet.publish_desired(state({"web": pod(env.image), "db": pod(env.image)}))
    await fleet.wait_status(
        lambda s: (
            s.applied_version == good.version and phases(s) == {"web": "Running", "db": "Running"}
        )
    )
    before = await spec_hashes(env)
    workloads = {w.name: w.pod_spec for w in good.workloads}
    workloads.update(bad)
    return good, before, await fleet.publish_desired(state(workloads, gates=gates))


async def rolled_back(
    fleet: FleetPeer,
    env: PodmanTestEnv,
    good: DesiredState,
    bad: DesiredState,
    before: dict[str, str],
) -> StatusReport:
    report = await fleet.wait_status(
        lambda s: s.failed is not None and s.failed.version == bad.version and s.failed.rolled_back,
        within=90,
    )
    assert report.applied_version == good.version
    assert report.applying_version == ""
    assert await spec_hashes(env) == before  # exactly the previous pods
    wanted = {"VersionFailed", "VersionRolledBack"}
    await wait_for(lambda: wanted <= {e.reason for e in fleet.events}, 30)
    return report


async def test_a_container_that_exits_at_once_is_rolled_back_and_never_reapplied(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        exits = pod(clean_podman.image, "exit 3", restartPolicy="Never")
        good, before, bad = await good_then(
            fleet, clean_podman, {"web": exits, "extra": pod(clean_podman.image)}
        )
        report = await rolled_back(fleet, clean_podman, good, bad, before)
        assert report.failed is not None
        assert (report.failed.reason, report.failed.workload, report.failed.container) == (
            "container-exited",
            "web",
            "app",
        )
        assert report.failed.exit_code == 3
        assert set(await pods(clean_podman)) == {"web", "db"}  # "extra" went with the version

        # The failed version stays desired: it is not applied again, pass after pass.
        ids = {name: found.pod_id for name, found in (await pods(clean_podman)).items()}
        await asyncio.sleep(5)  # two resync periods
        assert {n: f.pod_id for n, f in (await pods(clean_podman)).items()} == ids

        # Restarting with it crashing (Always) is another version: applied, then rolled back.
        looping = pod(clean_podman.image, "exit 4")
        workloads = {w.name: w.pod_spec for w in good.workloads} | {"web": looping}
        retry = await fleet.publish_desired(state(workloads))
        again = await rolled_back(fleet, clean_podman, good, retry, before)
        assert again.failed is not None
        assert again.failed.reason in ("crash-loop", "container-exited")

        # A newer good version is applied as usual, and clears the failure.
        fixed = await fleet.publish_desired(
            state(
                {"web": pod(clean_podman.image, "sleep 1000 & wait"), "db": pod(clean_podman.image)}
            )
        )
        healthy = await fleet.wait_status(lambda s: s.applied_version == fixed.version)
        assert healthy.failed is None
        assert (await spec_hashes(clean_podman))["db"] == before["db"]  # untouched
    finally:
        assert await running.stop() == 0


async def test_a_failing_health_check_is_rolled_back_with_the_probe_output(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        # The agent runs cat through libpod's exec API. A check may take long on a loaded
        # machine: a timeout would be a failure without cat's output.
        probe = {
            "livenessProbe": {
                "exec": {"command": ["cat", "/tmp/ok"]},
                "periodSeconds": 1,
                "failureThreshold": 2,
                "timeoutSeconds": 10,
            }
        }
        sick = pod(
            clean_podman.image, "touch /tmp/ok; sleep 3; rm /tmp/ok; " + SERVE, container=probe
        )
        good, before, bad = await good_then(fleet, clean_podman, {"web": sick}, {"web": SLOW_GATE})
        report = await rolled_back(fleet, clean_podman, good, bad, before)
        assert report.failed is not None
        assert report.failed.reason == "health-check-failed"
        assert report.failed.workload == "web"
        assert "/tmp/ok" in report.failed.message  # cat's complaint, the probe's output
    finally:
        assert await running.stop() == 0


async def test_an_image_that_cannot_be_pulled_is_rolled_back(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        good, before, bad = await good_then(fleet, clean_podman, {"web": pod(UNPULLABLE)})
        report = await rolled_back(fleet, clean_podman, good, bad, before)
        assert report.failed is not None
        assert (report.failed.reason, report.failed.workload) == ("image-pull-failed", "web")
    finally:
        assert await running.stop() == 0


async def test_offline_the_device_rolls_back_by_itself(
    agent_config: AgentConfigFactory,
    fleet: FleetPeer,
    clean_podman: PodmanTestEnv,
    mosquitto_broker: TestBroker,
) -> None:
    config = agent_config()
    running = RunningAgent(Agent(config))
    try:
        crash_later = pod(clean_podman.image, "sleep 4; exit 5", restartPolicy="Never")
        good, before, bad = await good_then(
            fleet, clean_podman, {"web": crash_later}, {"web": SLOW_GATE}
        )
        await wait_for(lambda: _local(config).applying_version == bad.version, 30)
        mosquitto_broker.stop()
        await wait_for(lambda: not running.agent.session.connected, 15)
        await wait_for(lambda: _local(config).rolled_back, 60)
        local = _local(config)
        assert (local.failed_version, local.failed_reason) == (bad.version, "container-exited")
        assert local.applied_version == good.version
        assert not local.connected
        assert await spec_hashes(clean_podman) == before
        shown = render_status(
            {"device_id": DEVICE, "certificate_not_after": None, "daemon": asdict(local)},
            now=datetime.now(UTC),
        )
        assert f"failed      {bad.version} (container-exited, rolled back)" in shown
        mosquitto_broker.start()
        await rolled_back(fleet, clean_podman, good, bad, before)
    finally:
        assert await running.stop() == 0


async def test_killed_during_rollback_ends_on_the_good_version(
    agent_config: AgentConfigFactory,
    fleet: FleetPeer,
    clean_podman: PodmanTestEnv,
    tmp_path: Path,
) -> None:
    config = agent_config()
    process = AgentProcess(write_toml(config, tmp_path / "agent.toml"), tmp_path / "agent.log")
    process.start()
    try:
        # The bad pod ignores SIGTERM for its 4-s grace: the rollback takes that long to
        # remove it, and the agent is killed meanwhile.
        stubborn = pod(clean_podman.image, "trap '' TERM; exit 6")
        stubborn["terminationGracePeriodSeconds"] = 4
        stubborn["restartPolicy"] = "Never"
        stubborn["containers"].append(
            {
                "name": "side",
                "image": clean_podman.image,
                "command": ["sh", "-c", "trap '' TERM; sleep 1000"],
            }
        )
        good, before, bad = await good_then(fleet, clean_podman, {"web": stubborn})
        journal = RolloutJournal(config.state_dir)

        def rolling_back() -> bool:
            transaction = journal.load().transaction
            return transaction is not None and transaction.phase == "rolling-back"

        await wait_for(rolling_back, 60, every=0.05)
        process.kill()
        assert rolling_back()
        process.start()
        await rolled_back(fleet, clean_podman, good, bad, before)
        record = journal.load()
        assert record.transaction is None
        assert record.failed is not None
        assert record.failed.reason == "container-exited"
        assert json.loads((config.state_dir / "good.json").read_bytes())["version"] == good.version
    finally:
        assert process.terminate() == 0, process.log_path.read_text()[-3000:]


async def test_an_update_waits_for_its_window(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        good = await fleet.publish_desired(state({"web": pod(clean_podman.image)}))
        await fleet.wait_status(lambda s: s.applied_version == good.version)
        before = await spec_hashes(clean_podman)
        # A window that opened two hours ago for one hour: closed now, opens tomorrow.
        now = datetime.now(UTC)
        past = now - timedelta(hours=2)
        closed = UpdateSchedule(at=f"{past.minute} {past.hour} * * *", start_grace_seconds=3600)
        changed = {"web": pod(clean_podman.image, "sleep 1000 & wait")}
        waiting = await fleet.publish_desired(state(changed, schedule=closed))
        report = await fleet.wait_status(lambda s: s.waiting_version == waiting.version)
        assert report.window_opens is not None
        assert report.window_opens - now > timedelta(hours=20)
        assert report.applied_version == good.version
        await asyncio.sleep(3)
        assert await spec_hashes(clean_podman) == before  # nothing applied
        assert "UpdateWaiting" in {e.reason for e in fleet.events}

        # Open now (the instant a minute ago, the default grace of an hour): applied.
        opened = now - timedelta(minutes=1)
        open_now = UpdateSchedule(at=f"{opened.minute} {opened.hour} * * *")
        applied = await fleet.publish_desired(state(changed, schedule=open_now))
        report = await fleet.wait_status(lambda s: s.applied_version == applied.version)
        assert report.waiting_version == ""
        assert await spec_hashes(clean_podman) != before
    finally:
        assert await running.stop() == 0


def _local(config: AgentConfig) -> Any:
    status = read_status(config.state_dir)
    assert status is not None
    return status

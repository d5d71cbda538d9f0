"""The agent end to end: real Mosquitto (mTLS + ACL), real Podman, the control plane played
with the fleet PKI (tests/agent/fleet_peer.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from flotta.agent.daemon import Agent
from flotta.agent.runtime import PodmanRuntime
from flotta.agent.status_file import read_status
from flotta.dev.podman import api_call
from flotta.schemas.wire import DesiredConfiguration, DesiredState, DesiredWorkload, HealthGate
from flotta.schemas.wire.desired import (
    HeartbeatConfiguration,
    LogCollectionSettings,
    MetricsSettings,
    SystemMetricsSettings,
    WorkloadMetricsSettings,
)
from tests.agent.conftest import AgentConfigFactory
from tests.agent.fleet_peer import FleetPeer, phases, wait_for
from tests.fixtures.brokers import TestBroker
from tests.fixtures.podman import PodmanTestEnv
from tests.fixtures.proxy import CuttableProxy

pytestmark = [pytest.mark.podman, pytest.mark.slow]

# Versions count as applied once healthy: these tests do not wait for a stabilisation.
QUICK_GATE = HealthGate(stabilization_seconds=0, timeout_seconds=60)
SERVE = "trap 'exit 0' TERM; while :; do sleep 1; done"
DEVICE = "edge-1"
SAMPLE_WORKLOAD = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "edgeworkload.yaml"


def workload(name: str, image: str, *, marker: str = "1") -> DesiredWorkload:
    container: dict[str, Any] = {
        "name": "app",
        "image": image,
        "command": ["sh", "-c", SERVE],
        "env": [{"name": "MARKER", "value": marker}],
    }
    return DesiredWorkload(
        name=name,
        namespace="default",
        pod_spec={
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
        },
    )


def desired(
    *workloads: DesiredWorkload, heartbeat: int = 1, metrics_interval: int = 60
) -> DesiredState:
    return DesiredState(
        device_id=DEVICE,
        namespace="default",
        configuration=DesiredConfiguration(
            heartbeat=HeartbeatConfiguration(period_seconds=heartbeat),
            health=QUICK_GATE,
            metrics=MetricsSettings(system=SystemMetricsSettings(interval=metrics_interval)),
        ),
        workloads=list(workloads),
    )


@pytest.fixture
async def proxy(mosquitto_broker: TestBroker) -> AsyncIterator[CuttableProxy]:
    link = CuttableProxy(mosquitto_broker.host, mosquitto_broker.port)
    await link.start()
    try:
        yield link
    finally:
        await link.close()


class RunningAgent:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.task = asyncio.create_task(agent.run())

    async def stop(self) -> int:
        self.agent.stop()
        return await asyncio.wait_for(self.task, 60)


async def pods(env: PodmanTestEnv) -> dict[str, Any]:
    runtime = PodmanRuntime.from_url(env.socket_url, files_root=env.environment.state_dir)
    return await runtime.list_workloads()


async def test_enrol_deploy_change_remove_and_converge_after_a_cut_link(
    agent_config: AgentConfigFactory,
    fleet: FleetPeer,
    proxy: CuttableProxy,
    clean_podman: PodmanTestEnv,
) -> None:
    config = agent_config(broker_url=f"mqtts://127.0.0.1:{proxy.port}")
    running = RunningAgent(Agent(config))
    try:
        # Enrolment: key generated on the device, certificate issued, files 0600.
        online = await wait_for(
            lambda: [c for c in fleet.connections if c.state == "online"], within=30
        )
        assert fleet.enrolments[0].hardware is not None
        assert fleet.enrolments[0].hardware.memory is not None
        assert online[0].applied_version == ""
        for name in ("device.key", "device.crt", "ca.crt"):
            mode = (config.identity_dir / name).stat().st_mode
            assert stat.S_IMODE(mode) == 0o600, name

        # A workload arrives, runs, and its phase is reported with the applied version.
        first = await fleet.publish_desired(desired(workload("web", clean_podman.image)))
        await fleet.wait_status(
            lambda s: s.applied_version == first.version and phases(s) == {"web": "Running"}
        )
        # Hardware: the full inventory once, then only changed sections (if any).
        inventories = [s.hardware for s in fleet.statuses if s.hardware is not None]
        assert inventories[0].scope == "full"
        assert inventories[0].hardware.memory is not None
        assert all(h.scope == "delta" for h in inventories[1:])
        assert len(fleet.statuses) > len(inventories)
        web_before = (await pods(clean_podman))["web"]

        # Changed specification: the pod is replaced; an unchanged one would be kept.
        second = await fleet.publish_desired(
            desired(
                workload("web", clean_podman.image, marker="2"),
                workload("db", clean_podman.image),
            )
        )
        await fleet.wait_status(
            lambda s: (
                s.applied_version == second.version
                and phases(s) == {"web": "Running", "db": "Running"}
            )
        )
        after = await pods(clean_podman)
        assert after["web"].pod_id != web_before.pod_id
        db_pod = after["db"].pod_id

        # Removal of one workload leaves the other untouched.
        third = await fleet.publish_desired(
            desired(workload("db", clean_podman.image), metrics_interval=1)
        )
        await fleet.wait_status(
            lambda s: s.applied_version == third.version and phases(s) == {"db": "Running"}
        )
        assert set(await pods(clean_podman)) == {"db"}
        assert (await pods(clean_podman))["db"].pod_id == db_pod

        # The link goes dark; the desired state changes meanwhile; the device converges.
        proxy.cut(refuse=True)
        await wait_for(lambda: not running.agent.session.connected, 15)
        cut_at_ms = int(time.time() * 1000)
        fourth = await fleet.publish_desired(
            desired(
                workload("db", clean_podman.image),
                workload("cache", clean_podman.image),
                metrics_interval=1,
            )
        )
        await asyncio.sleep(3)
        restored_at_ms = int(time.time() * 1000)
        assert set(await pods(clean_podman)) == {"db"}  # offline: nothing has arrived
        status = read_status(config.state_dir)
        assert status is not None
        assert not status.connected
        proxy.restore()
        await fleet.wait_status(
            lambda s: (
                s.applied_version == fourth.version
                and phases(s) == {"db": "Running", "cache": "Running"}
            ),
            within=60,
        )
        assert (await pods(clean_podman))["db"].pod_id == db_pod
        # Telemetry observed while offline arrives afterwards, in numbered batches, no gap.
        await wait_for(
            lambda: any(
                cut_at_ms <= sample.timestamp_ms <= restored_at_ms
                for batch in fleet.metrics
                for sample in batch.samples
            ),
            within=30,
        )
        sequences = sorted({(b.stream, b.sequence) for b in fleet.metrics})
        assert [seq for _, seq in sequences] == list(range(len(sequences)))
        reasons = {event.reason for event in fleet.events}
        assert {"WorkloadDeployed", "WorkloadUpdated", "WorkloadRemoved"} <= reasons
    finally:
        assert await running.stop() == 0

    def last_offline_reason() -> str | None:
        final = [c for c in fleet.connections if c.state == "offline"]
        return final[-1].reason if final and final[-1].reason == "agent stopped" else None

    # the goodbye reaches the peer through the broker after stop() returned
    assert await wait_for(last_offline_reason, 10) == "agent stopped"


async def test_bad_desired_payload_is_counted_and_keeps_the_last_good_state(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    config = agent_config()
    running = RunningAgent(Agent(config))
    try:
        good = await fleet.publish_desired(desired(workload("web", clean_podman.image)))
        await fleet.wait_status(
            lambda s: s.applied_version == good.version and phases(s) == {"web": "Running"}
        )
        persisted = (config.state_dir / "desired.json").read_bytes()
        await fleet.publish_raw(DEVICE, b'{"schemaVersion": 1, "deviceId": 5}')
        await fleet.publish_raw(DEVICE, b"\xff not json")
        await wait_for(lambda: running.agent.state.bad_payloads == 2, 15)
        await wait_for(
            lambda: [e for e in fleet.events if e.reason == "InvalidDesiredState"], within=15
        )
        assert (config.state_dir / "desired.json").read_bytes() == persisted
        assert not running.task.done()
        assert set(await pods(clean_podman)) == {"web"}
        status = read_status(config.state_dir)
        assert status is not None
        assert status.bad_desired_payloads == 2
    finally:
        assert await running.stop() == 0


async def test_deregistration_removes_workloads_data_and_identity(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    config = agent_config()
    running = RunningAgent(Agent(config))
    good = await fleet.publish_desired(desired(workload("web", clean_podman.image)))
    await fleet.wait_status(
        lambda s: s.applied_version == good.version and phases(s) == {"web": "Running"}
    )
    assert (config.state_dir / "workloads" / "web" / "export").is_dir()
    assert (config.state_dir / "events").is_dir()
    await fleet.publish_desired(
        DesiredState(device_id=DEVICE, namespace="default", deregister=True)
    )
    assert await asyncio.wait_for(running.task, 60) == 0
    assert await pods(clean_podman) == {}
    assert not (config.state_dir / "desired.json").exists()
    assert not (config.state_dir / "workloads").exists()
    assert not (config.state_dir / "events").exists()
    assert not (config.identity_dir / "device.key").exists()
    status = read_status(config.state_dir)
    assert status is not None
    assert status.phase == "deregistered"


async def test_a_stopped_workload_is_started_again_and_reported(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    # Resync slower than the 1-s heartbeat: a heartbeat sees the stopped pod before the
    # reconciler starts it again (the commit of a version wakes both at the same moment).
    config = agent_config(resync_seconds=3.0)
    running = RunningAgent(Agent(config))
    try:
        scraped = msgspec.structs.replace(
            workload("web", clean_podman.image),
            metrics=WorkloadMetricsSettings(port=9100, interval=5),
        )
        good = await fleet.publish_desired(desired(scraped))
        await fleet.wait_status(
            lambda s: s.applied_version == good.version and phases(s) == {"web": "Running"}
        )
        # The telemetry service is told where to scrape: the pod's address, from inside the
        # pod's network namespace (Podman's network is not the agent's here).
        endpoint = await wait_for(lambda: running.agent.state.endpoints.get("web"), 15)
        assert ipaddress.ip_address(endpoint.address).version == 4
        assert endpoint.netns.startswith("/proc/")
        status, body = api_call(
            clean_podman.socket_path, "POST", "/pods/web/stop", query={"t": "0"}
        )
        assert status == 200, body
        await fleet.wait_status(lambda s: phases(s).get("web") in ("Stopped", "Exited", "Failed"))
        await wait_for(lambda: [e for e in fleet.events if e.reason == "WorkloadStarted"], 30)
        seen = len(fleet.statuses)
        await fleet.wait_status(
            lambda s: fleet.statuses.index(s) >= seen and phases(s) == {"web": "Running"}
        )
    finally:
        assert await running.stop() == 0


def sample_workload(image: str) -> DesiredWorkload:
    """The stack's sample workload (deploy/samples/edgeworkload.yaml) as the operator renders
    it: busybox httpd serves its tick count as Prometheus text, and it logs every tick."""
    document = yaml.safe_load(SAMPLE_WORKLOAD.read_text())
    spec = document["spec"]
    pod_spec = spec["pod"]["spec"]
    for container in pod_spec["containers"]:
        container["image"] = image
    metrics = spec["metrics"]
    return DesiredWorkload(
        name=document["metadata"]["name"],
        namespace="default",
        pod_spec=pod_spec,
        metrics=WorkloadMetricsSettings(path=metrics["path"], port=metrics["port"], interval=1),
        log_collection=spec["logCollection"],
    )


async def test_the_sample_workloads_metrics_and_logs_reach_the_bridge(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    """Podman runs in a network namespace of its own, as in the local stack: the pod's
    address is not routed to the agent, which scrapes from inside the pod's namespace."""
    config = agent_config(resync_seconds=1.0)
    running = RunningAgent(Agent(config))
    try:
        counter = sample_workload(clean_podman.image)
        state = msgspec.structs.replace(
            desired(counter),
            configuration=DesiredConfiguration(
                heartbeat=HeartbeatConfiguration(period_seconds=1),
                metrics=MetricsSettings(system=SystemMetricsSettings(disabled=True)),
                log_collection={counter.log_collection: LogCollectionSettings()},
                health=QUICK_GATE,
            ),
        )
        good = await fleet.publish_desired(state)
        await fleet.wait_status(
            lambda s: s.applied_version == good.version and phases(s) == {"counter": "Running"}
        )

        def ticks() -> list[tuple[float, dict[str, str]]]:
            return [
                (sample.value, sample.labels)
                for batch in fleet.metrics
                for sample in batch.samples
                if sample.name == "counter_ticks_total"
            ]

        await wait_for(lambda: len({value for value, _ in ticks()}) >= 2, 60)
        assert {tuple(sorted(labels.items())) for _, labels in ticks()} == {
            (("container", "counter"), ("workload", "counter"))
        }
        lines = await wait_for(
            lambda: [line for batch in fleet.logs for line in batch.lines if "tick" in line.line],
            30,
        )
        assert lines[0].line == "tick 0"
        assert lines[0].container == "counter"
    finally:
        assert await running.stop() == 0

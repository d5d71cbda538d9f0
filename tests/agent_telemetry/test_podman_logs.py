"""Workload logs from a real Podman container (the podman branch's isolated Podman and
PodmanRuntime.logs as the log source), through the telemetry buffer; a restarted service
resumes from its stored cursor instead of sending the container's log again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from flotta.agent.runtime import PodmanRuntime, WorkloadSpec
from flotta.agent.telemetry import TelemetryService
from flotta.backoff import Backoff, BackoffPolicy
from flotta.schemas.wire import DesiredConfiguration, DesiredWorkload
from flotta.schemas.wire.desired import MetricsSettings, SystemMetricsSettings
from tests.agent_telemetry.receiver import Receiver
from tests.agent_telemetry.waiting import wait_until
from tests.fixtures.podman import PodmanTestEnv

pytestmark = pytest.mark.podman

SCRIPT = "trap 'exit 0' TERM; i=1; while [ $i -le 60 ]; do echo line $i; i=$((i+1)); done; while :; do sleep 1; done"
NO_SYSTEM = DesiredConfiguration(
    metrics=MetricsSettings(system=SystemMetricsSettings(disabled=True))
)


@pytest.fixture
async def runtime(podman_env: PodmanTestEnv, tmp_path: Path) -> AsyncIterator[PodmanRuntime]:
    podman_runtime = PodmanRuntime(podman_env.socket_path, files_root=tmp_path / "files")
    yield podman_runtime
    names = await podman_runtime.list_workloads()
    await asyncio.gather(*(podman_runtime.remove(name) for name in names))


def pod_yaml(image: str) -> str:
    container = {"name": "app", "image": image, "command": ["sh", "-c", SCRIPT]}
    spec = {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 2,
        "containers": [container],
    }
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": spec})


def lines(receiver: Receiver) -> list[str]:
    return [line.line for batch in receiver.logs() for line in batch.lines]


async def run_service(
    state: Path, runtime: PodmanRuntime, receiver: Receiver, until_lines: int
) -> None:
    telemetry = TelemetryService(
        state,
        "dev-1",
        max_bytes=10_000_000,
        log_source=runtime.logs,
        flush_interval=0.2,
        retry=Backoff(BackoffPolicy(base=0.1, cap=0.5, jitter=0.5)),
    )
    workload = DesiredWorkload(name="chatty", namespace="default", pod_spec={}, log_collection="x")
    telemetry.configure(NO_SYSTEM, [workload], {})
    receiver.confirm = telemetry.receipt
    runner = asyncio.create_task(telemetry.run(receiver.publish))
    try:
        await wait_until(lambda: len(lines(receiver)) >= until_lines, limit=60)
        await asyncio.sleep(2.0)  # a repeated line would arrive now
    finally:
        await telemetry.close()
        await runner


async def test_container_logs_arrive_once_across_a_service_restart(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv, tmp_path: Path
) -> None:
    await runtime.apply(WorkloadSpec(name="chatty", pod_yaml=pod_yaml(podman_env.image)))
    receiver = Receiver(online=True)
    await run_service(tmp_path / "state", runtime, receiver, 60)
    first = lines(receiver)
    assert first == [f"line {i}" for i in range(1, 61)]
    batches = receiver.logs()
    assert all(
        line.workload == "chatty" and line.container == "app" for b in batches for line in b.lines
    )

    await run_service(tmp_path / "state", runtime, receiver, 60)  # same buffer, same cursor
    assert lines(receiver) == first

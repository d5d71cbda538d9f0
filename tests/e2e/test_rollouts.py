"""Rollouts on the local stack (flotta dev up): simulated devices over real TLS MQTT, the
operator, the bridge and the local Kubernetes API. A good revision completes batch by batch;
a bad one (devices fail it and roll back) halts after the first batch; pause and resume; an
operator restarted while the rollout waits goes on where it was."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from flotta.dev.stack import processes
from flotta.dev.stack.layout import StackLayout
from flotta.dev.stack.up import Stack, UpOptions
from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION
from tests.e2e.conftest import RunningSystem, wait_until

pytestmark = pytest.mark.slow

DEVICES = 5
NAMESPACE = "default"
POLICY: dict[str, Any] = {
    "batches": [{"limit": 1}, {"limit": "50%"}],
    "successThreshold": "100%",
    "batchTimeout": "10m",
}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[RunningSystem]:
    from kubernetes import config

    stack = Stack(
        StackLayout(tmp_path / "stack"),
        UpOptions(devices=DEVICES, real_agent=False, telemetry=False, progress=lambda _: None),
    )
    try:
        stack.up()
        api = config.new_client_from_config(config_file=str(stack.layout.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            yield RunningSystem(stack, api)
        finally:
            api.close()  # type: ignore[no-untyped-call]
    finally:
        stack.stop_all()


def rollout(system: RunningSystem) -> dict[str, Any]:
    status = system.workload("canary").get("status") or {}
    result: dict[str, Any] = status.get("rollout") or {}
    return result


def told(system: RunningSystem) -> dict[str, str]:
    return {
        d["metadata"]["name"]: ((d.get("status") or {}).get("desiredRevisions") or {}).get(
            "EdgeWorkload/canary", ""
        )
        for d in system.devices()
    }


def apply(system: RunningSystem, image: str, **policy: Any) -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": "EdgeWorkload",
        "metadata": {"name": "canary", "namespace": NAMESPACE},
        "spec": {
            "deviceSelector": {"matchLabels": {"flotta/member-of": "shop-floor"}},
            "type": "pod",
            "pod": {"spec": {"containers": [{"name": "main", "image": image}]}},
            "rolloutPolicy": {**POLICY, **policy},
        },
    }
    try:
        system.custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "edgeworkloads", body
        )
    except ApiException as exc:  # it exists: change it
        if exc.status != 409:
            raise
        system.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "edgeworkloads",
            "canary",
            {"spec": body["spec"]},
            _content_type="application/merge-patch+json",  # type: ignore[call-arg]
        )


def phase_is(system: RunningSystem, phase: str, revision: int | None = None) -> bool:
    current = rollout(system)
    return current.get("phase") == phase and (
        revision is None or current.get("revision") == revision
    )


def restart_operator(system: RunningSystem) -> None:
    stack = system.stack
    record = next(r for r in stack.records if r.name == "operator" and r.is_running())
    processes.stop(record, timeout=10)
    stack.records.remove(record)
    stack.start_operator(system.layout.ports())


def test_batches_halt_pause_resume_and_restart(system: RunningSystem) -> None:
    wait_until(
        lambda: (
            len([d for d in system.devices() if (d.get("status") or {}).get("phase")]) == DEVICES
        ),
        timeout=180,
        what=f"{DEVICES} simulated devices enrolled and reporting",
    )
    # A good revision: batch by batch to every device.
    apply(system, "localhost/flotta/busybox:latest")
    wait_until(lambda: phase_is(system, "Complete", 1), timeout=120, what="revision 1 complete")
    good = rollout(system)
    assert good["updatedDevices"] == DEVICES
    # what each device carries reaches its status with desiredVersion (rate-limited writes)
    wait_until(
        lambda: set(told(system).values()) == {good["revisionName"]},
        timeout=60,
        what="every device's desiredRevisions",
    )

    # A bad one: every device that gets it fails and rolls back; the first batch is 1 device.
    (system.layout.simulator / "faults.json").write_text(
        json.dumps([{"image": "broken", "mode": "exit"}])
    )
    time.sleep(2.5)  # the simulator looks at the file every second
    apply(system, "localhost/flotta/busybox:broken")
    wait_until(lambda: phase_is(system, "Halted", 2), timeout=120, what="revision 2 halted")
    halted = rollout(system)
    assert halted["currentBatch"] == 1
    assert halted["failedDevices"] == 1
    assert halted["failures"][0]["reason"] == "container-exited"
    assert halted["failures"][0]["rolledBack"] is True
    wait_until(
        lambda: list(told(system).values()).count(halted["revisionName"]) == 1,
        timeout=60,
        what="one device told revision 2",
    )
    failed_device = halted["failures"][0]["device"]
    device_status = system.device(failed_device)["status"]
    assert device_status["failedVersion"]["reason"] == "container-exited"
    assert device_status["appliedVersion"] != device_status["desiredVersion"]

    # Paused from the start: nobody gets revision 3 until it is resumed.
    apply(system, "localhost/flotta/busybox:v3", paused=True)
    wait_until(lambda: phase_is(system, "Paused", 3), timeout=60, what="revision 3 paused")
    assert rollout(system)["updatedDevices"] == 0
    apply(system, "localhost/flotta/busybox:v3", paused=False, approval={"required": True})
    wait_until(
        lambda: phase_is(system, "WaitingForApproval", 3),
        timeout=120,
        what="revision 3 waiting for approval after batch 1",
    )
    waiting = rollout(system)

    def first_batch() -> set[str]:
        return {n for n, r in told(system).items() if r == waiting["revisionName"]}

    batch_one = wait_until(lambda: first_batch(), timeout=60, what="batch 1 written")
    assert len(batch_one) == 1

    # The operator restarts; the rollout is where it was, and goes on once approved.
    restart_operator(system)
    wait_until(
        lambda: phase_is(system, "WaitingForApproval", 3) and first_batch() == batch_one,
        timeout=60,
        what="the restarted operator to keep the rollout waiting",
    )
    assert rollout(system)["batchCutoffs"] == waiting["batchCutoffs"]
    apply(
        system,
        "localhost/flotta/busybox:v3",
        approval={"required": True, "revision": 3, "batch": 3},
    )
    wait_until(lambda: phase_is(system, "Complete", 3), timeout=120, what="revision 3 complete")
    wait_until(
        lambda: set(told(system).values()) == {waiting["revisionName"]},
        timeout=60,
        what="every device told revision 3",
    )

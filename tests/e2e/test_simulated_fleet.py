"""The control plane end to end with simulated devices (real TLS MQTT, real enrolment)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from flotta.bridge.share_group import is_guessable
from flotta.child_process import same_code_environment
from flotta.dev.stack import processes
from flotta.dev.stack.nats_client import observer_connection
from flotta.dev.stack.supervision import restarts
from tests.e2e.conftest import RunningSystem, wait_until


def converged(system: RunningSystem, expected: int) -> bool:
    devices = system.devices()
    if len(devices) != expected:
        return False
    for device in devices:
        status = device.get("status") or {}
        if status.get("phase") != "Online":
            return False
        if (
            not status.get("desiredVersion")
            or status.get("appliedVersion") != status["desiredVersion"]
        ):
            return False
    return True


def test_devices_enrol_converge_and_report_to_kubernetes_and_nats(
    simulated_system: RunningSystem,
) -> None:
    system = simulated_system
    wait_until(
        lambda: converged(system, 2), timeout=180, what="2 simulated devices online and converged"
    )
    device = system.device("sim-00000")
    assert device["metadata"]["labels"]["flotta/member-of"] == "shop-floor"
    assert device["metadata"]["labels"]["workload/counter"] == "true"
    assert [w["phase"] for w in device["status"]["workloads"]] == ["Running"]
    wait_until(
        lambda: (system.workload("counter").get("status") or {}).get("runningDevices") == 2,
        timeout=30,
        what="the counter workload to run on both devices",
    )

    async def first_status_event() -> dict[str, object]:
        connection = await observer_connection(system.layout.root)
        try:
            subscription = await connection.subscribe("flotta.device.default.*.status")
            message = await subscription.next_msg(timeout=60)
            event: dict[str, object] = json.loads(message.data)
            return event
        finally:
            await connection.close()

    event = asyncio.run(first_status_event())
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.flotta.device.status.v1"
    assert str(event["source"]).startswith("/flotta/namespaces/default/devices/sim-")


def test_the_stack_keeps_its_secrets_to_its_owner(simulated_system: RunningSystem) -> None:
    """Keys, the admin token and the local API's Secrets are nobody else's to read, and the
    bridge replicas share a group name nobody can guess."""
    layout = simulated_system.layout
    assert stat.S_IMODE(layout.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(layout.kube.stat().st_mode) == 0o700
    for private in (layout.kubeconfig, layout.kube / "state.db", layout.bridge_group):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert not is_guessable(layout.bridge_group.read_text().strip())
    bridge = next(r for r in simulated_system.stack.running() if r.name == "bridge")
    group = layout.bridge_group.read_text().strip().encode()
    environ = Path(f"/proc/{bridge.pid}/environ").read_bytes().split(b"\0")
    assert b"FLOTTA_BRIDGE_GROUP=" + group in environ
    assert group not in Path(f"/proc/{bridge.pid}/cmdline").read_bytes()  # no one else sees it


def test_a_detached_stack_starts_a_killed_bridge_again(simulated_system: RunningSystem) -> None:
    system = simulated_system
    wait_until(
        lambda: converged(system, 2), timeout=180, what="2 simulated devices online and converged"
    )
    system.stack.start_supervisor()  # what `flotta dev up --detach` leaves behind
    layout = system.layout
    bridge = next(r for r in processes.load(layout.processes) if r.name == "bridge")
    os.kill(bridge.pid, signal.SIGKILL)

    def bridge_again() -> processes.ProcessRecord | None:
        again = next(r for r in processes.load(layout.processes) if r.name == "bridge")
        return again if again.pid != bridge.pid and again.is_running() else None

    fresh = wait_until(bridge_again, timeout=30, what="the supervisor to start the bridge again")
    assert fresh.argv == bridge.argv
    assert fresh.env == bridge.env  # its secret group too
    assert restarts(layout).get("bridge") == 1
    wait_until(lambda: converged(system, 2), timeout=60, what="the devices served again")


def test_flotta_dev_tail_reads_with_the_observer_certificate(
    simulated_system: RunningSystem,
) -> None:
    """What `flotta dev up` prints for NATS works: the stack's NATS admits the observer."""
    layout = simulated_system.layout
    result = subprocess.run(
        [
            *(sys.executable, "-m", "flotta.cli", "dev", "tail"),
            *("--state-dir", str(layout.root), "--count", "1"),
            "flotta.device.default.*.status",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=same_code_environment(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # --count 1 stops after the first; others may be printed while it stops
    subject, event = result.stdout.splitlines()[0].split(" ", 1)
    assert subject.startswith("flotta.device.default.sim-")
    assert json.loads(event)["type"] == "io.flotta.device.status.v1"

"""With no bridge alive, Online devices become Unknown (the decision, and against the local
Kubernetes API with a running operator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from flotta.bridge.presence import PresenceLease
from flotta.operator.bridge_watch import REASON, any_alive, unknown_status
from tests.operator.conftest import (
    ENROLMENT_NAMESPACE,
    Stack,
    patch_device_status,
    wait_until,
)
from tests.operator.test_operator_integration import create_device, get

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def lease(renewed: datetime, duration: int = 30) -> dict[str, Any]:
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"spec": {"renewTime": stamp, "leaseDurationSeconds": duration}}


def test_a_bridge_is_alive_while_one_lease_is_fresh() -> None:
    assert not any_alive([], NOW)
    assert not any_alive([lease(NOW - timedelta(seconds=31))], NOW)
    assert any_alive([lease(NOW - timedelta(seconds=31)), lease(NOW - timedelta(seconds=5))], NOW)
    assert not any_alive([{"spec": {}}], NOW)


def test_unknown_keeps_the_other_conditions() -> None:
    status = {
        "phase": "Online",
        "conditions": [
            {"type": "Online", "status": "True", "reason": "Heartbeat"},
            {"type": "WorkloadsReady", "status": "True", "reason": "AllRunning"},
            {"type": "Ready", "status": "True", "reason": "DeviceReady"},
        ],
    }
    patch = unknown_status(status, NOW)
    assert patch["phase"] == "Unknown"
    for kind in ("Online", "Ready"):
        (condition,) = [c for c in patch["conditions"] if c["type"] == kind]
        assert (condition["status"], condition["reason"]) == ("Unknown", REASON)
    assert {"type": "WorkloadsReady", "status": "True", "reason": "AllRunning"} in patch[
        "conditions"
    ]


def set_online(stack: Stack, name: str) -> None:
    patch_device_status(stack, name, {"phase": "Online"})


def phase(stack: Stack, name: str) -> str:
    return str((get(stack, "edgedevices", name).get("status") or {}).get("phase"))


@pytest.mark.slow
def test_online_devices_become_unknown_while_no_bridge_is_alive(stack: Stack) -> None:
    create_device(stack, "seen-1", {})
    set_online(stack, "seen-1")
    presence = PresenceLease(stack.api, namespace=ENROLMENT_NAMESPACE, holder="bridge-0")
    presence.renew()  # a bridge is alive: nothing changes
    running = stack.start_operator(bridge_unknown_after=2.0)
    wait_until(lambda: running.metric("flotta_operator_bridges_alive") == 1)
    leases = client.CoordinationV1Api(stack.api).list_namespaced_lease(ENROLMENT_NAMESPACE)
    assert presence.name in {item.metadata.name for item in leases.items if item.metadata}
    assert phase(stack, "seen-1") == "Online"

    # The bridge stops renewing (its lease is made to look old): the device becomes Unknown.
    presence.renew(now=datetime.now(UTC) - timedelta(minutes=5))
    wait_until(lambda: phase(stack, "seen-1") == "Unknown", timeout=20)
    status = get(stack, "edgedevices", "seen-1")["status"]
    online = next(c for c in status["conditions"] if c["type"] == "Online")
    assert (online["status"], online["reason"]) == ("Unknown", REASON)
    assert running.metric("flotta_operator_devices_marked_unknown_total") == 1

    # A bridge is back: the operator leaves the phase to it.
    presence.renew()
    wait_until(lambda: running.metric("flotta_operator_bridges_alive") == 1)
    set_online(stack, "seen-1")
    assert running.metric("flotta_operator_devices_marked_unknown_total") == 1

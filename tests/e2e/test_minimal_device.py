"""A device that an integrator writes from docs/contract.md and schemas/json/ alone enrols,
converges and is confirmed by the real control plane (``flotta dev up`` with no devices)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotta.schemas.crd.common import GROUP, VERSION
from tests.e2e import minimal_device
from tests.e2e.conftest import RunningSystem, start_system, wait_until
from tests.e2e.minimal_device import Credentials, MinimalDevice, parsed, wait_for

DEVICE_ID = "minimal-1"


@pytest.fixture
def empty_system(tmp_path: Path) -> Iterator[RunningSystem]:
    yield from start_system(tmp_path / "stack", devices=0, real_agent=False)


def test_the_minimal_device_uses_no_flotta_code() -> None:
    tree = ast.parse(Path(minimal_device.__file__).read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported
    assert [name for name in imported if name.split(".")[0] in ("flotta", "tests")] == []


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_device_written_from_the_contract_enrols_converges_and_is_confirmed(
    empty_system: RunningSystem, tmp_path: Path
) -> None:
    system = empty_system
    endpoints = system.endpoints
    clients = system.layout.root / "pki" / "clients"
    ca = Path(endpoints["ca"])
    device = MinimalDevice(
        DEVICE_ID,
        "127.0.0.1",
        _port(endpoints["mqtt"]),
        _port(endpoints["enrolment"]),
        ca,
        tmp_path,
    )
    identity = device.enrol(
        Credentials(ca, clients / "bootstrap-simulator.crt", clients / "bootstrap-simulator.key"),
        timeout=60,
    )
    custom = system.custom
    # A short heartbeat period for the test: the device follows what its desired state says.
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "edgedevices",
        DEVICE_ID,
        {"spec": {"heartbeat": {"periodSeconds": 2}}},
    )
    client = device.connect(identity)
    try:

        def converged() -> dict[str, Any] | None:
            status = system.device(DEVICE_ID).get("status") or {}
            desired = device.desired or {}
            told = desired.get("configuration", {}).get("heartbeat", {}).get("periodSeconds")
            if (
                told == 2
                and status.get("phase") == "Online"
                and status.get("appliedVersion") == desired["version"]
                and status.get("desiredVersion") == desired["version"]
            ):
                return desired
            return None

        desired = wait_until(converged, timeout=90, what="the minimal device Online and converged")
        assert desired["deviceId"] == DEVICE_ID

        device.send_event(client, "minimal-events", 1)
        device.send_metrics(client, "minimal-metrics", 1)
        confirmed: dict[str, list[int]] = {}
        while set(confirmed) != {"events", "metrics"}:
            receipt = parsed("receipts", wait_for(device.inbox, device.topic("receipts"), 60))
            confirmed[receipt["kind"]] = receipt["sequences"]
        assert confirmed == {"events": [1], "metrics": [1]}
    finally:
        device.stop(client)

    def offline() -> bool:
        return (system.device(DEVICE_ID).get("status") or {}).get("phase") == "Offline"

    wait_until(offline, timeout=90, what="the stopped device Offline")

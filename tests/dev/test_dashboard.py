from datetime import UTC, datetime
from typing import Any

from flotta.dev.stack.dashboard import render

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def test_fleet_view_shows_phases_workloads_and_enrolment_progress() -> None:
    devices: list[dict[str, Any]] = [
        {
            "metadata": {"name": "cam-1", "namespace": "default"},
            "status": {
                "phase": "Online",
                "appliedVersion": "sha256:abcdef0123456789",
                "lastSeenTime": "2026-11-23T11:59:30Z",
                "workloads": [{"name": "a", "phase": "Running"}, {"name": "b", "phase": "Failed"}],
            },
        },
        {"metadata": {"name": "cam-2", "namespace": "default"}},
    ]
    requests = [{"metadata": {"name": "cam-3"}, "spec": {}, "status": {"phase": "Pending"}}]
    workloads = [
        {"metadata": {"name": "counter"}, "status": {"targetedDevices": 2, "runningDevices": 1}}
    ]
    text = render(devices, requests, workloads, now=NOW)
    assert "2 devices (1 Online, 1 Pending); enrolments in progress: 1" in text
    cam1 = next(line for line in text.splitlines() if "cam-1" in line)
    assert "abcdef012345" in cam1
    assert "1 Failed, 1 Running" in cam1
    assert cam1.rstrip().endswith("30s")
    assert "counter" in text

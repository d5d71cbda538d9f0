"""Injected failures: the chosen share of simulated devices fails an image as the agent does
(reports the version failed, keeps its last good version, never applies it again), or stops
reporting; the rules come from the command line or a followed faults file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flotta.dev.simulator import device_state
from flotta.dev.simulator.device import FaultRule, SimulatedDevice
from flotta.dev.simulator.faults import FaultError, load_faults, rule
from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.wire import DesiredState, DesiredWorkload, DeviceEvent, StatusReport

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def desired(image: str) -> bytes:
    state = DesiredState(
        device_id="sim-1",
        namespace="default",
        workloads=[
            DesiredWorkload(
                name="web",
                namespace="default",
                pod_spec={"containers": [{"name": "main", "image": image}]},
            )
        ],
    )
    return encode(with_version(state))


def test_a_failing_device_rolls_back_and_never_applies_that_version_again() -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="web:broken"),))
    device.on_desired(desired("web:1"), NOW)
    good = device.applied_version
    bad = desired("web:broken")
    status, event = device.on_desired(bad, NOW)
    report = decode(StatusReport, status.payload)
    assert report.applied_version == good  # the last good version keeps running
    assert report.failed is not None
    assert report.failed.version == decode(DesiredState, bad).version
    assert (report.failed.reason, report.failed.workload, report.failed.container) == (
        "container-exited",
        "web",
        "main",
    )
    assert report.failed.exit_code == 1
    assert report.failed.rolled_back
    assert decode(DeviceEvent, event.payload).reason == "VersionFailed"
    assert device.on_desired(bad, NOW) == []  # never again
    # a newer version is applied, and the failure is forgotten once it runs
    [fixed] = device.on_desired(desired("web:2"), NOW)
    assert decode(StatusReport, fixed.payload).failed is None


def test_only_the_chosen_share_fails_the_same_devices_every_time() -> None:
    half = FaultRule(image="web:broken", share=0.5)
    chosen = [f"sim-{i:05d}" for i in range(1000) if half.picks(f"sim-{i:05d}")]
    assert 400 < len(chosen) < 600
    assert chosen == [f"sim-{i:05d}" for i in range(1000) if half.picks(f"sim-{i:05d}")]


def test_health_check_and_silent_modes() -> None:
    checked = SimulatedDevice("sim-1", faults=(FaultRule(image="x", mode="health-check"),))
    [status, _] = checked.on_desired(desired("x"), NOW)
    failure = decode(StatusReport, status.payload).failed
    assert failure is not None
    assert (failure.reason, failure.exit_code) == ("health-check-failed", None)
    silent = SimulatedDevice("sim-1", faults=(FaultRule(image="x", mode="silent"),))
    assert silent.on_desired(desired("x"), NOW) == []
    assert silent.silent
    silent.on_desired(desired("y"), NOW)
    assert not silent.silent


def test_the_failed_version_survives_a_simulator_restart(tmp_path: Path) -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="x"),))
    device.on_desired(desired("x"), NOW)
    device_state.save(device, tmp_path)
    again = SimulatedDevice("sim-1")
    assert device_state.load(again, tmp_path)
    assert again.failed == device.failed
    assert again.on_desired(desired("x"), NOW) == []


def test_faults_files(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps([{"image": "a", "share": 0.25, "mode": "silent"}]))
    assert load_faults(path) == (FaultRule(image="a", share=0.25, mode="silent"),)
    path.write_text("{not json")
    assert load_faults(path) == ()
    for bad in ({}, {"image": "a", "share": 2}, {"image": "a", "mode": "explode"}, "a"):
        with pytest.raises(FaultError):
            rule(bad)

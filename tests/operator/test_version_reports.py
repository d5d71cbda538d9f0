"""What the operator hears of the devices' versions straight from their status reports, and
rollouts that progress on it alone: no server, no EdgeDevice status written by a bridge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flotta.operator.fleet_cache import Fleet, Key
from flotta.operator.rollouts import Rollouts
from flotta.operator.version_reports import (
    CHANGED,
    INVALID,
    LIMITED,
    SAME,
    STALE,
    UNKNOWN,
    HeardVersions,
    VersionReports,
)
from flotta.schemas.codec import encode
from flotta.schemas.wire.status import StatusReport, VersionFailure
from tests.operator.builders import device, workload

NS = "fleet"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = {"batches": [{"limit": 2}, {"limit": "50%"}], "successThreshold": "100%"}


def status(device_id: str = "d1") -> str:
    return f"flotta/devices/{device_id}/status"


def report(seconds: int = 0, **fields: Any) -> bytes:
    return encode(StatusReport(time=T0 + timedelta(seconds=seconds), **fields))


def test_a_report_is_kept_once_and_only_what_changes_a_version_counts_as_a_change() -> None:
    reports = VersionReports(known=lambda device_id: device_id == "d1")
    assert reports.take(status(), report(0, applying_version="v2"), 0.0) == (CHANGED, "d1")
    assert reports.take(status(), report(1, applying_version="v2"), 1.0) == (SAME, "d1")
    assert reports.take(status(), report(2, applied_version="v2"), 2.0) == (CHANGED, "d1")
    heard = reports.get("d1")
    assert heard is not None
    assert (heard.applied, heard.applying, heard.time) == ("v2", "", T0 + timedelta(seconds=2))
    # An older report (redelivered, reordered) never takes a newer one back.
    assert reports.take(status(), report(1, applying_version="v2"), 3.0) == (STALE, "d1")
    assert reports.get("d1") == heard
    reports.clear()
    assert reports.get("d1") is None
    assert reports.counts == {
        CHANGED: 2,
        SAME: 1,
        STALE: 1,
        INVALID: 0,
        UNKNOWN: 0,
        LIMITED: 0,
    }


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (status(), b"{not json"),
        (status(), b'{"schemaVersion":1,"time":"2026-12-07T12:00:00Z","appliedVersion":5}'),
        (status(), b'{"schemaVersion":2,"time":"2026-12-07T12:00:00Z"}'),
        (status(), b"\xff" * 200_000),
        ("flotta/devices/d1/events", report()),
        ("flotta/devices/D 1/status", report()),
        ("elsewhere/d1/status", report()),
    ],
    ids=["not-json", "wrong-type", "schema-2", "too-large", "other-kind", "bad-id", "not-ours"],
)
def test_bad_reports_are_refused_and_counted(topic: str, payload: bytes) -> None:
    reports = VersionReports(known=lambda _device_id: True)
    reports.take(status(), report(0, applied_version="v1"), 0.0)
    result, _ = reports.take(topic, payload, 1.0)
    assert result == INVALID
    assert reports.counts[INVALID] == 1
    heard = reports.get("d1")
    assert heard is not None
    assert heard.applied == "v1"


def test_a_device_the_operator_does_not_know_and_a_chatty_one_are_refused() -> None:
    reports = VersionReports(known=lambda device_id: device_id != "stranger", rate=1, burst=3)
    assert reports.take(status("stranger"), report(), 0.0)[0] == UNKNOWN
    assert reports.get("stranger") is None
    results = [reports.take(status("chatty"), report(i), 0.0)[0] for i in range(10)]
    assert results.count(LIMITED) == 7
    # Another device is not held back by the chatty one.
    assert reports.take(status("quiet"), report(0, applied_version="v1"), 0.0)[0] == CHANGED
    assert reports.take(status("chatty"), report(20, applied_version="v9"), 5.0)[0] == CHANGED


class HeardWorld:
    """Devices whose EdgeDevice status never changes (no bridge writes it): only what the
    operator hears of their reports moves the rollout."""

    def __init__(self, count: int = 6) -> None:
        self.fleet = Fleet()
        self.now = T0
        self.heard: dict[str, HeardVersions] = {}
        self.told: dict[Key, dict[str, str]] = {}
        self.rollouts = Rollouts(
            self.fleet,
            told=lambda key: self.told.get(key, {}),
            heard=self.heard.get,
            clock=lambda: self.now,
        )
        self.names = [f"d{i}" for i in range(count)]
        for name in self.names:
            self.fleet.apply_device(device(name, NS, labels={"app": "web"}))
        self.failing: set[str] = set()
        self.deaf = False

    def put(self, image: str) -> None:
        model, pod = workload(
            "web",
            NS,
            selector={"matchLabels": {"app": "web"}},
            pod={"containers": [{"name": "m", "image": image}]},
            extra_spec={"rolloutPolicy": POLICY},
        )
        self.fleet.apply_workload(model, pod)

    def report(self, name: str) -> None:
        key = (NS, name)
        _, tags = self.rollouts.choose(key, self.fleet.workloads_of(key))
        self.told[key] = dict(t.split("=", 1) for t in tags)
        version = f"v-{name}-{tags}"
        self.rollouts.record(key, version, tags)
        if self.deaf:
            return
        if self.told[key].get("EdgeWorkload/web", "") in self.failing:
            failure = VersionFailure(
                version=version, reason="container-exited", workload="web", time=self.now
            )
            self.heard[name] = HeardVersions(self.now, failed=failure)
        else:
            self.heard[name] = HeardVersions(self.now, applied=version)

    def step(self) -> tuple[str, dict[str, Any]]:
        for name in self.names:
            self.report(name)
        evaluation = self.rollouts.evaluate((NS, "web"))
        assert evaluation is not None
        assert evaluation.status is not None
        self.now += timedelta(seconds=1)
        return evaluation.phase, evaluation.status


def test_a_rollout_completes_on_heard_reports_alone() -> None:
    world = HeardWorld()
    world.put("web:1")
    phases = [world.step()[0] for _ in range(5)]
    assert phases[-1] == "Complete"
    assert phases[0] == "Progressing"
    _, status = world.step()
    assert status["updatedDevices"] == 6


def test_a_heard_failure_halts_the_rollout_with_its_reason() -> None:
    world = HeardWorld()
    world.put("web:1")
    while world.step()[0] != "Complete":
        pass
    world.put("web:bad")
    world.step()
    revision = world.rollouts.evaluate((NS, "web"))
    assert revision is not None
    assert revision.status is not None
    world.failing.add(revision.status["revisionName"])
    phase, status = world.step()
    assert phase == "Halted"
    assert status["failedDevices"] == 2
    assert {f["reason"] for f in status["failures"]} == {"container-exited"}


def test_without_heard_reports_the_rollout_waits_for_the_edgedevice_status() -> None:
    """After a restart nothing is heard yet: the EdgeDevice status (here: nothing applied)
    decides, and the batch waits."""
    world = HeardWorld()
    world.deaf = True
    world.put("web:1")
    phases = {world.step()[0] for _ in range(5)}
    assert phases == {"Progressing"}
    _, status = world.step()
    assert status["updatedDevices"] == 0
    assert status["batchDevices"] == 2

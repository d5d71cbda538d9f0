"""Status transitions, conditions, visible changes and the merge patch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flotta.bridge.device_status import (
    DeviceContext,
    DeviceStatus,
    Wanted,
    from_api,
    on_connection,
    on_context,
    on_heartbeat,
    on_missed_heartbeats,
    overall,
    status_patch,
    visible_changes,
)
from flotta.bridge.hardware import merge_hardware
from flotta.schemas.codec import content_document
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.hardware import Cpu, Hardware, Memory
from flotta.schemas.wire.status import HardwareReport, StatusReport, UpgradeReport, WorkloadReport

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CTX = DeviceContext("ns", "dev-1", generation=3, desired_version="v2", heartbeat_period=10)


def report(*workloads: tuple[str, str], applied: str = "v2", **extra: object) -> StatusReport:
    return StatusReport(
        time=T0,
        applied_version=applied,
        workloads=[WorkloadReport(name=n, phase=p) for n, p in workloads],  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def conditions(status: DeviceStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_first_heartbeat_makes_device_online_with_conditions() -> None:
    status = on_heartbeat(DeviceStatus(), report(("web", "Running")), CTX, T0)
    assert status.phase == "Online"
    assert status.last_seen == T0
    assert conditions(status) == {
        "Online": ("True", "DeviceOnline"),
        "ConfigApplied": ("True", "VersionApplied"),
        "WorkloadsReady": ("True", "AllRunning"),
        "Ready": ("True", "DeviceReady"),
    }
    assert all(c.observed_generation == 3 for c in status.conditions)
    assert status.observed_generation == 3
    assert status.workloads[0].last_transition_time == T0


def test_identical_heartbeat_is_not_a_visible_change() -> None:
    first = on_heartbeat(DeviceStatus(), report(("web", "Running")), CTX, T0)
    later = on_heartbeat(first, report(("web", "Running")), CTX, T0 + timedelta(seconds=10))
    assert visible_changes(first, later) == ()
    assert later.last_seen == T0 + timedelta(seconds=10)
    assert later.workloads[0].last_transition_time == T0  # unchanged phase keeps its time


def test_failed_workload_is_a_visible_change_with_transition_time() -> None:
    first = on_heartbeat(DeviceStatus(), report(("web", "Running"), ("db", "Running")), CTX, T0)
    t1 = T0 + timedelta(seconds=10)
    failed = on_heartbeat(first, report(("web", "Failed"), ("db", "Running")), CTX, t1)
    assert visible_changes(first, failed) == ("workloads", "conditions")
    web = next(w for w in failed.workloads if w.name == "web")
    db = next(w for w in failed.workloads if w.name == "db")
    assert (web.phase, web.last_transition_time) == ("Failed", t1)
    assert db.last_transition_time == T0
    ready = next(c for c in failed.conditions if c.type == "WorkloadsReady")
    assert (ready.status, ready.message, ready.last_transition_time) == ("False", "web: Failed", t1)
    online = next(c for c in failed.conditions if c.type == "Online")
    assert online.last_transition_time == T0


def test_config_applied_follows_desired_version() -> None:
    status = on_heartbeat(DeviceStatus(), report(applied="v1"), CTX, T0)
    assert conditions(status)["ConfigApplied"] == ("False", "VersionPending")
    moved = on_context(status, DeviceContext("ns", "dev-1", 4, "v1", 10), T0)
    assert conditions(moved)["ConfigApplied"] == ("True", "VersionApplied")
    assert visible_changes(status, moved) == ("conditions", "observedGeneration")
    unknown = on_context(status, DeviceContext("ns", "dev-1", 3, "", 10), T0)
    assert conditions(unknown)["ConfigApplied"] == ("Unknown", "NoDesiredVersion")


def test_will_and_missed_heartbeats_make_device_offline() -> None:
    online = on_heartbeat(DeviceStatus(), report(("web", "Running")), CTX, T0)
    will = ConnectionState(state="offline", time=T0, reason="lost")
    gone = on_connection(online, will, CTX, T0 + timedelta(seconds=1))
    assert gone.phase == "Offline"
    assert conditions(gone)["Online"] == ("False", "Disconnected")
    assert conditions(gone)["WorkloadsReady"] == ("Unknown", "DeviceOffline")
    silent = on_missed_heartbeats(online, CTX, T0 + timedelta(seconds=31))
    assert conditions(silent)["Online"] == ("False", "HeartbeatsMissed")
    # a context change keeps the offline reason
    again = on_context(silent, CTX, T0 + timedelta(seconds=40))
    assert visible_changes(silent, again) == ()
    birth = ConnectionState(state="online", time=T0, applied_version="v2")
    back = on_connection(silent, birth, CTX, T0 + timedelta(seconds=50))
    assert back.phase == "Online"
    assert conditions(back)["Online"] == ("True", "DeviceOnline")


def test_upgrade_and_hardware_delta() -> None:
    full = HardwareReport(
        scope="full", hardware=Hardware(hostname="a", cpu=Cpu(count=2), memory=Memory())
    )
    upgrade = UpgradeReport(supported=True, current_commit_id="abc")
    first = on_heartbeat(DeviceStatus(), report(hardware=full, upgrade=upgrade), CTX, T0)
    assert first.hardware is not None
    assert first.hardware["hostname"] == "a"
    assert first.upgrade == {"supported": True, "currentCommitID": "abc"}
    delta = HardwareReport(scope="delta", hardware=Hardware(hostname="b"))
    second = on_heartbeat(first, report(hardware=delta), CTX, T0)
    assert second.hardware is not None
    assert second.hardware["hostname"] == "b"
    assert second.hardware["cpu"]["count"] == 2
    assert second.upgrade == first.upgrade  # a heartbeat without upgrade info keeps it
    assert visible_changes(first, second) == ("hardware",)


def test_hardware_full_replaces_and_delta_without_record_is_the_report() -> None:
    recorded = {"hostname": "a", "cpu": {"count": 2}}
    full = HardwareReport(scope="full", hardware=Hardware(hostname="b"))
    assert merge_hardware(recorded, full) == {"hostname": "b"}
    delta = HardwareReport(scope="delta", hardware=Hardware(memory=Memory(physical_bytes=5)))
    merged = merge_hardware(recorded, delta)
    assert merged["cpu"] == {"count": 2}
    assert merged["memory"]["physicalBytes"] == 5
    assert merge_hardware(None, delta) == content_document(delta.hardware)


def test_patch_round_trips_and_keeps_foreign_conditions() -> None:
    foreign = {"type": "Certified", "status": "True", "reason": "Ok", "message": ""}
    start = from_api({"phase": "Enrolled", "desiredVersion": "v2", "conditions": [foreign]})
    assert start.phase == "Enrolled"
    status = on_heartbeat(start, report(("web", "Running")), CTX, T0)
    patch = status_patch(status)
    body = patch["status"]
    assert "desiredVersion" not in body
    assert "certificate" not in body
    assert body["conditions"][0] == foreign
    assert body["lastSeenTime"] == "2026-01-01T12:00:00Z"
    back = from_api(body)
    assert visible_changes(back, status) == ()
    assert back.foreign_conditions == (foreign,)


def test_from_api_tolerates_garbage() -> None:
    status = from_api({"workloads": ["x", {"name": "w"}], "conditions": [1], "phase": 5})
    assert status.phase is None
    assert [w.name for w in status.workloads] == ["w"]


ONLINE: Wanted = ("Online", "True", "DeviceOnline", "the device reports")
APPLIED: Wanted = ("ConfigApplied", "True", "VersionApplied", "version v2 applied")
RUNNING: Wanted = ("WorkloadsReady", "True", "AllRunning", "1 running")


def test_ready_is_true_only_when_online_applied_and_running() -> None:
    assert overall(ONLINE, APPLIED, RUNNING)[:3] == ("Ready", "True", "DeviceReady")
    no_workloads: Wanted = ("WorkloadsReady", "True", "NoWorkloads", "no workloads")
    assert overall(ONLINE, APPLIED, no_workloads)[1] == "True"


def test_ready_is_false_with_the_first_failing_reason() -> None:
    pending: Wanted = ("ConfigApplied", "False", "VersionPending", "applied v1, desired v2")
    none_yet: Wanted = ("ConfigApplied", "Unknown", "NoDesiredVersion", "no desired version yet")
    failing: Wanted = ("WorkloadsReady", "False", "WorkloadsNotReady", "web: Failed")
    assert overall(ONLINE, pending, failing) == (
        "Ready",
        "False",
        "VersionPending",
        "ConfigApplied: applied v1, desired v2",
    )
    assert overall(ONLINE, none_yet, RUNNING)[1:3] == ("False", "NoDesiredVersion")
    assert overall(ONLINE, APPLIED, failing) == (
        "Ready",
        "False",
        "WorkloadsNotReady",
        "WorkloadsReady: web: Failed",
    )


def test_ready_is_unknown_while_the_device_does_not_report() -> None:
    missed: Wanted = ("Online", "False", "HeartbeatsMissed", "no heartbeat for 3 periods")
    assert overall(missed, APPLIED, RUNNING)[1:3] == ("Unknown", "HeartbeatsMissed")
    status = on_heartbeat(DeviceStatus(), report(("web", "Running")), CTX, T0)
    offline = on_missed_heartbeats(status, CTX, T0 + timedelta(seconds=30))
    assert conditions(offline)["Ready"] == ("Unknown", "HeartbeatsMissed")


def test_ready_changes_only_with_the_others() -> None:
    """Every transition of a heartbeat sequence: Ready never is the only visible change."""
    sequence = [
        report(("web", "Running")),
        report(("web", "Running")),
        report(("web", "Failed")),
        report(("web", "Failed"), applied="v1"),
        report(("web", "Running"), applied="v1"),
        report(("web", "Running"), ("db", "Pending")),
        report(),
    ]
    status = DeviceStatus()
    for n, item in enumerate(sequence):
        later = on_heartbeat(status, item, CTX, T0 + timedelta(seconds=n))
        others = [c.visible() for c in later.conditions if c.type != "Ready"]
        before = [c.visible() for c in status.conditions if c.type != "Ready"]
        if others == before:
            assert visible_changes(status, later) == ()
        status = later
    offline = on_missed_heartbeats(status, CTX, T0 + timedelta(seconds=60))
    again = on_missed_heartbeats(offline, CTX, T0 + timedelta(seconds=90))
    assert visible_changes(offline, again) == ()

"""The fleet: API objects and device reports in, coalesced writes out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flotta.bridge.coalescer import WriteCoalescer, WriteKind
from flotta.bridge.device_status import DEFAULT_HEARTBEAT_PERIOD
from flotta.bridge.fleet_state import Fleet, told_period
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.status import StatusReport, WorkloadReport

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def device(
    name: str, status: dict[str, Any] | None = None, generation: int = 1, told: int | None = 10
) -> dict[str, Any]:
    """An EdgeDevice whose operator recorded ``told`` as its heartbeat period (None: not yet)."""
    status = dict(status or {"phase": "Enrolled", "desiredVersion": "v1"})
    if told is not None:
        status.setdefault("desiredHeartbeatPeriodSeconds", told)
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": generation},
        "spec": {"heartbeat": {"periodSeconds": 10}},
        "status": status,
    }


def heartbeat(t: datetime, phase: str = "Running", claimed: int = 10) -> StatusReport:
    return StatusReport(
        time=t,
        applied_version="v1",
        heartbeat_period_seconds=claimed,
        workloads=[WorkloadReport(name="web", phase=phase)],  # type: ignore[arg-type]
    )


def new_fleet() -> Fleet:
    return Fleet(WriteCoalescer(rate=1000, burst=1000, refresh_rate=1000, now=0))


def drain(fleet: Fleet, mono: float) -> list[tuple[str, WriteKind]]:
    taken = fleet.writes.take(mono, 1000)
    for key, _ in taken:
        planned = fleet.plan(key)
        assert planned is not None
        fleet.written(planned)
        fleet.writes.finished(key)
    return taken


def test_heartbeats_write_once_then_only_refreshes() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    assert fleet.writes.pending == 0  # enrolled and silent: nothing to write
    assert fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    assert drain(fleet, 0) == [("d1", WriteKind.URGENT)]  # Enrolled -> Online
    for i in range(1, 6):  # five more periods: nothing
        t = T0 + timedelta(seconds=10 * i)
        fleet.heartbeat("d1", heartbeat(t), t, 10 * i)
        assert drain(fleet, 10 * i) == []
    t = T0 + timedelta(seconds=60)
    fleet.heartbeat("d1", heartbeat(t), t, 60)
    assert drain(fleet, 60) == [("d1", WriteKind.REFRESH)]


def test_change_and_stale_reports() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    t1 = T0 + timedelta(seconds=10)
    fleet.heartbeat("d1", heartbeat(t1, "Failed"), t1, 10)
    assert not fleet.heartbeat("d1", heartbeat(T0), t1, 10)  # older than applied
    plan = fleet.plan("d1")
    assert plan is not None
    assert plan.patch["status"]["workloads"][0]["phase"] == "Failed"
    assert drain(fleet, 10) == [("d1", WriteKind.URGENT)]


def rollout_report(t: datetime, version: str, phase: str = "Running") -> StatusReport:
    return StatusReport(
        time=t,
        applied_version=version,
        heartbeat_period_seconds=10,
        workloads=[WorkloadReport(name="web", phase=phase)],  # type: ignore[arg-type]
    )


def test_a_failure_is_written_before_a_rollout_backlog() -> None:
    fleet = Fleet(WriteCoalescer(rate=10, burst=10, refresh_rate=1, now=0))
    names = [f"d{i}" for i in range(50)]
    for name in names:
        fleet.observed(device(name), T0, 0)
        fleet.heartbeat(name, heartbeat(T0), T0, 0)
    mono = 0.0
    while fleet.writes.pending:  # the first statuses (Online) go out at 10 a second
        mono += 1
        drain(fleet, mono)
    t1 = T0 + timedelta(seconds=mono)
    for name in names:  # a rollout: every device applied v2, nothing else changed
        fleet.heartbeat(name, rollout_report(t1, "v2"), t1, mono)
    assert int(fleet.writes.pending) == 50  # int(): mypy keeps the loop's narrowing to 0
    t2 = t1 + timedelta(seconds=1)
    fleet.heartbeat("d42", rollout_report(t2, "v2", "Failed"), t2, mono + 1)
    taken = drain(fleet, mono + 1)
    assert taken[0] == ("d42", WriteKind.URGENT)  # ahead of the 49 waiting applied versions
    assert {kind for _, kind in taken[1:]} == {WriteKind.CHANGE}
    assert len(taken) == 10


def online_condition(fleet: Fleet, name: str) -> tuple[str | None, str]:
    record = fleet.record(name)
    assert record is not None
    reasons = [c.reason for c in record.written.conditions if c.type == "Online"]
    return record.written.phase, reasons[0]


def test_missed_heartbeats_and_will_after_its_grace() -> None:
    fleet = Fleet(WriteCoalescer(rate=1000, burst=1000, refresh_rate=1000, now=0), offline_grace=20)
    for name in ("d1", "d2"):
        fleet.observed(device(name), T0, 0)
        fleet.heartbeat(name, heartbeat(T0), T0, 0)
    drain(fleet, 0)
    fleet.connection("d2", ConnectionState(state="offline", time=T0), T0, 5)
    assert fleet.tick(T0 + timedelta(seconds=24), 24) == []
    assert drain(fleet, 24) == []  # within the grace: still Online, nothing written
    assert fleet.tick(T0 + timedelta(seconds=25), 25) == ["d2"]
    assert fleet.tick(T0 + timedelta(seconds=30), 30) == ["d1"]  # three periods of 10 s
    drain(fleet, 30)
    assert online_condition(fleet, "d1") == ("Offline", "HeartbeatsMissed")
    assert online_condition(fleet, "d2") == ("Offline", "Disconnected")


def test_a_device_back_within_the_grace_writes_nothing() -> None:
    """A broker restart: every device's will, then its birth or a heartbeat a few seconds
    later. Nothing a user should see changed."""
    fleet = new_fleet()
    for name in ("d1", "d2"):
        fleet.observed(device(name), T0, 0)
        fleet.heartbeat(name, heartbeat(T0), T0, 0)
    drain(fleet, 0)
    for name in ("d1", "d2"):
        fleet.connection(name, ConnectionState(state="offline", time=T0), T0, 1)
    t = T0 + timedelta(seconds=8)
    fleet.connection("d1", ConnectionState(state="online", time=t, applied_version="v1"), t, 8)
    fleet.heartbeat("d2", heartbeat(t), t, 8)
    assert fleet.writes.pending == 0
    for second in range(8, 60):  # past the grace, with heartbeats every period
        now = T0 + timedelta(seconds=second)
        if second % 10 == 8:
            for name in ("d1", "d2"):
                fleet.heartbeat(name, heartbeat(now), now, second)
        assert fleet.tick(now, second) == []
    assert online_condition(fleet, "d1") == ("Online", "DeviceOnline")
    assert online_condition(fleet, "d2") == ("Online", "DeviceOnline")


def test_the_grace_is_at_most_the_missed_heartbeat_window() -> None:
    fleet = Fleet(
        WriteCoalescer(rate=1000, burst=1000, refresh_rate=1000, now=0), offline_grace=600
    )
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    fleet.connection("d1", ConnectionState(state="offline", time=T0), T0, 1)
    assert fleet.tick(T0 + timedelta(seconds=30), 30) == []
    assert fleet.tick(T0 + timedelta(seconds=31), 31) == ["d1"]  # 3 x 10 s, not 600 s
    drain(fleet, 31)
    assert online_condition(fleet, "d1") == ("Offline", "Disconnected")


def test_without_a_grace_a_will_is_offline_at_once() -> None:
    fleet = Fleet(WriteCoalescer(rate=1000, burst=1000, refresh_rate=1000, now=0), offline_grace=0)
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    fleet.connection("d1", ConnectionState(state="offline", time=T0), T0, 1)
    assert drain(fleet, 1) == [("d1", WriteKind.URGENT)]
    assert online_condition(fleet, "d1") == ("Offline", "Disconnected")
    assert fleet.tick(T0 + timedelta(seconds=60), 60) == []  # not reported twice


def test_a_will_from_a_device_that_never_reported_still_ends_offline() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.connection("d1", ConnectionState(state="offline", time=T0), T0, 0)
    assert fleet.tick(T0 + timedelta(seconds=30), 30) == ["d1"]
    assert drain(fleet, 30) == [("d1", WriteKind.URGENT)]
    assert online_condition(fleet, "d1") == ("Offline", "Disconnected")


def test_restart_with_matching_status_writes_nothing_and_desired_change_writes() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    plan = fleet.plan("d1")
    assert plan is not None
    api_status = {**plan.patch["status"], "desiredVersion": "v1"}
    restarted = new_fleet()
    restarted.observed(device("d1", api_status), T0, 0)
    assert restarted.writes.pending == 0
    restarted.observed(device("d1", {**api_status, "desiredVersion": "v2"}, generation=2), T0, 1)
    assert restarted.writes.pending == 1
    plan = restarted.plan("d1")
    assert plan is not None
    conditions = {c["type"]: c["status"] for c in plan.patch["status"]["conditions"]}
    assert conditions["ConfigApplied"] == "False"
    assert plan.patch["status"]["observedGeneration"] == 2


def test_unknown_and_deleted_devices() -> None:
    fleet = new_fleet()
    assert not fleet.heartbeat("nope", heartbeat(T0), T0, 0)
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    fleet.deleted("d1")
    assert fleet.context("d1") is None
    assert fleet.writes.pending == 0
    assert fleet.plan("d1") is None


def test_a_phase_someone_else_wrote_is_written_over_by_the_next_heartbeat() -> None:
    """The operator marks devices Unknown while no bridge is alive; a bridge that kept its
    state must not believe its own Online is still what the API holds."""
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    record = fleet.record("d1")
    assert record is not None
    online_status = fleet.plan("d1")
    assert online_status is not None
    api_view = online_status.patch["status"]
    unknown = {**api_view, "phase": "Unknown", "desiredVersion": "v1"}
    fleet.observed(device("d1", unknown), T0 + timedelta(seconds=70), 70)
    assert record.written.phase == "Unknown"
    t = T0 + timedelta(seconds=75)
    fleet.heartbeat("d1", heartbeat(t), t, 75)
    taken = drain(fleet, 75)
    assert [key for key, _ in taken] == ["d1"]
    assert record.written.phase == "Online"


def test_the_echo_of_its_own_write_changes_nothing() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    planned = fleet.plan("d1")
    assert planned is not None
    echo = {**planned.patch["status"], "desiredVersion": "v1"}
    fleet.observed(device("d1", echo), T0 + timedelta(seconds=1), 1)
    assert drain(fleet, 1) == []


def test_a_late_event_of_its_own_earlier_status_writes_nothing() -> None:
    """Watch events can arrive after the bridge's next write: an older phase must not make
    it write again."""
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    fleet.observed(device("d1", {"phase": "Enrolled", "desiredVersion": "v1"}), T0, 1)
    assert drain(fleet, 1) == []


def test_missed_heartbeats_count_in_the_told_period_not_the_claimed_one() -> None:
    """The set tells the devices 10 s (the spec's 60 s is overridden); one device leaves the
    period out of its heartbeats (decoded as the default, 60 s), one claims 600 s."""
    fleet = new_fleet()
    for name in ("silent-claim", "long-claim"):
        obj = device(name, told=10)
        obj["spec"] = {"heartbeat": {"periodSeconds": 60}}
        fleet.observed(obj, T0, 0)
    fleet.heartbeat("silent-claim", StatusReport(time=T0, applied_version="v1"), T0, 0)
    fleet.heartbeat("long-claim", heartbeat(T0, claimed=600), T0, 0)
    drain(fleet, 0)
    assert fleet.tick(T0 + timedelta(seconds=29), 29) == []
    assert sorted(fleet.tick(T0 + timedelta(seconds=30), 30)) == ["long-claim", "silent-claim"]
    drain(fleet, 30)
    assert online_condition(fleet, "silent-claim") == ("Offline", "HeartbeatsMissed")
    assert online_condition(fleet, "long-claim") == ("Offline", "HeartbeatsMissed")


def test_until_a_period_is_told_the_default_applies_whatever_the_claim() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1", told=None), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0, claimed=5), T0, 0)
    drain(fleet, 0)
    assert fleet.tick(T0 + timedelta(seconds=179), 179) == []  # not 3 x 5 s
    assert fleet.tick(T0 + timedelta(seconds=180), 180) == ["d1"]  # 3 x 60 s


def test_a_newly_told_period_counts_from_the_next_heartbeat() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1", told=60), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    drain(fleet, 0)
    planned = fleet.plan("d1")
    assert planned is not None
    told = {**planned.patch["status"], "desiredVersion": "v2", "desiredHeartbeatPeriodSeconds": 5}
    fleet.observed(device("d1", told), T0, 1)
    t = T0 + timedelta(seconds=2)
    fleet.heartbeat("d1", heartbeat(t, claimed=60), t, 2)
    assert fleet.tick(T0 + timedelta(seconds=16), 16) == []
    assert fleet.tick(T0 + timedelta(seconds=17), 17) == ["d1"]  # 2 s + 3 x 5 s


def test_a_told_period_is_read_only_when_usable() -> None:
    assert told_period(15) == 15.0
    assert told_period(None) == DEFAULT_HEARTBEAT_PERIOD
    assert told_period(0) == DEFAULT_HEARTBEAT_PERIOD
    assert told_period("10") == DEFAULT_HEARTBEAT_PERIOD
    assert told_period(True) == DEFAULT_HEARTBEAT_PERIOD


def test_a_status_from_before_the_ready_condition_gets_it_in_one_ordinary_write() -> None:
    fleet = new_fleet()
    fleet.observed(device("d1"), T0, 0)
    fleet.heartbeat("d1", heartbeat(T0), T0, 0)
    planned = fleet.plan("d1")
    assert planned is not None
    older = dict(planned.patch["status"])
    older["conditions"] = [c for c in older["conditions"] if c["type"] != "Ready"]
    restarted = new_fleet()
    restarted.observed(device("d1", older), T0, 0)
    assert drain(restarted, 0) == [("d1", WriteKind.CHANGE)]  # not urgent: behind failures
    record = restarted.record("d1")
    assert record is not None
    assert [c.type for c in record.written.conditions][-1] == "Ready"
    t = T0 + timedelta(seconds=10)
    restarted.heartbeat("d1", heartbeat(t), t, 10)
    assert drain(restarted, 10) == []

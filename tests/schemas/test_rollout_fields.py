"""The wire fields of safe rollouts (health gate, update schedule, failed versions): their
names, their defaults, and that a desired state that does not use them encodes as before."""

from datetime import UTC, datetime

import pytest

from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.errors import PayloadError
from flotta.schemas.wire import (
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HealthGate,
    StatusReport,
    UpdateSchedule,
    VersionFailure,
)

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def _desired(configuration: DesiredConfiguration, health: HealthGate | None = None) -> DesiredState:
    workload = DesiredWorkload(
        name="web", namespace="ns", pod_spec={"containers": [{"name": "c"}]}, health=health
    )
    return with_version(
        DesiredState(
            device_id="d1", namespace="ns", configuration=configuration, workloads=[workload]
        )
    )


def test_defaults_are_not_written() -> None:
    data = encode(_desired(DesiredConfiguration()))
    assert b"health" not in data
    assert b"updateSchedule" not in data
    decoded = decode(DesiredState, data)
    assert decoded.configuration.health == HealthGate(stabilization_seconds=60, timeout_seconds=300)
    assert decoded.configuration.update_schedule is None
    assert decoded.workloads[0].health is None


def test_health_gate_and_schedule_round_trip_in_camel_case() -> None:
    state = _desired(
        DesiredConfiguration(
            health=HealthGate(stabilization_seconds=5, timeout_seconds=30),
            update_schedule=UpdateSchedule(at="0 2 * * *", time_zone="Europe/Berlin"),
        ),
        health=HealthGate(stabilization_seconds=0),
    )
    data = encode(state)
    assert b'"stabilizationSeconds":5' in data
    assert b'"timeoutSeconds":30' in data
    assert b'"updateSchedule":{"at":"0 2 * * *","timeZone":"Europe/Berlin"}' in data
    assert decode(DesiredState, data) == state


def test_health_gate_bounds_are_checked() -> None:
    state = _desired(DesiredConfiguration(health=HealthGate(stabilization_seconds=3601)))
    with pytest.raises(PayloadError, match="stabilizationSeconds"):
        encode(state)


def test_status_reports_a_failed_version() -> None:
    report = StatusReport(
        time=NOW,
        applied_version="sha256:good",
        applying_version="",
        waiting_version="sha256:next",
        window_opens=NOW,
        failed=VersionFailure(
            version="sha256:bad",
            reason="container-exited",
            workload="web",
            container="c",
            exit_code=3,
            message="exited with 3",
            time=NOW,
            rolled_back=True,
        ),
    )
    data = encode(report)
    assert b'"failed":{"version":"sha256:bad","reason":"container-exited"' in data
    assert b'"rolledBack":true' in data
    assert b'"waitingVersion":"sha256:next"' in data
    assert decode(StatusReport, data) == report

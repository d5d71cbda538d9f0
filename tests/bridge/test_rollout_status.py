"""What a device says about its rollout (applying, waiting and failed versions) in the
EdgeDevice status: the fields, the ConfigApplied condition, and what counts as a change."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from flotta.bridge.device_status import (
    DeviceStatus,
    from_api,
    on_heartbeat,
    status_patch,
    urgent_change,
    visible_changes,
)
from flotta.schemas.wire.status import VersionFailure
from tests.bridge.test_device_status import CTX, T0, conditions, report

FAILURE = VersionFailure(
    version="v2",
    reason="container-exited",
    workload="web",
    container="main",
    exit_code=3,
    message="boom",
    time=T0,
    rolled_back=True,
)


def test_a_failed_version_is_mapped_with_its_reason_and_is_urgent() -> None:
    before = on_heartbeat(DeviceStatus(), report(("web", "Running"), applied="v1"), CTX, T0)
    failed = on_heartbeat(before, report(("web", "Running"), applied="v1", failed=FAILURE), CTX, T0)
    assert failed.failed == {
        "version": "v2",
        "reason": "container-exited",
        "workload": "web",
        "container": "main",
        "exitCode": 3,
        "message": "boom",
        "time": "2026-01-01T12:00:00Z",
        "rolledBack": True,
    }
    assert conditions(failed)["ConfigApplied"] == ("False", "VersionFailed")
    assert conditions(failed)["Ready"] == ("False", "VersionFailed")
    message = next(c.message for c in failed.conditions if c.type == "ConfigApplied")
    assert message == (
        "version v2 failed (container-exited in web/main, exit code 3); rolled back to v1: boom"
    )
    assert "failedVersion" in visible_changes(before, failed)
    assert urgent_change(before, failed)
    # the device repeats it with every heartbeat: not a change then
    again = on_heartbeat(
        failed, report(("web", "Running"), applied="v1", failed=FAILURE), CTX, T0 + timedelta(1)
    )
    assert visible_changes(failed, again) == ()


def test_a_retry_carries_its_token_and_says_applying_while_under_way() -> None:
    failed = on_heartbeat(DeviceStatus(), report(applied="v1", failed=FAILURE), CTX, T0)
    assert "retry" not in (failed.failed or {})
    assert conditions(failed)["ConfigApplied"] == ("False", "VersionFailed")
    retried = msgspec.structs.replace(FAILURE, retry=1700000000)
    retrying = on_heartbeat(
        failed, report(applied="v1", applying_version="v2", failed=FAILURE), CTX, T0
    )
    assert conditions(retrying)["ConfigApplied"] == ("False", "Applying")
    again = on_heartbeat(retrying, report(applied="v1", failed=retried), CTX, T0)
    assert again.failed is not None
    assert again.failed["retry"] == 1700000000
    assert conditions(again)["ConfigApplied"] == ("False", "VersionFailed")
    assert "failedVersion" in visible_changes(retrying, again)


def test_applying_and_waiting_versions_say_why_the_config_is_not_applied() -> None:
    applying = on_heartbeat(DeviceStatus(), report(applied="v1", applying_version="v2"), CTX, T0)
    assert applying.applying_version == "v2"
    assert conditions(applying)["ConfigApplied"] == ("False", "Applying")
    opens = T0 + timedelta(hours=3)
    waiting = on_heartbeat(
        applying, report(applied="v1", waiting_version="v2", window_opens=opens), CTX, T0
    )
    assert conditions(waiting)["ConfigApplied"] == ("False", "WaitingForWindow")
    assert set(visible_changes(applying, waiting)) >= {"applyingVersion", "waitingVersion"}
    assert not urgent_change(applying, waiting)
    patch = status_patch(waiting)["status"]
    assert patch["waitingVersion"] == "v2"
    assert patch["windowOpens"] == "2026-01-01T15:00:00Z"
    assert patch["applyingVersion"] is None  # removed by the merge patch
    assert patch["failedVersion"] is None


def test_the_fields_round_trip_through_the_api_form() -> None:
    status = on_heartbeat(
        DeviceStatus(),
        report(applied="v1", waiting_version="v2", window_opens=T0, failed=FAILURE),
        CTX,
        T0,
    )
    api = {k: v for k, v in status_patch(status)["status"].items() if v is not None}
    read = from_api(api)
    assert (read.waiting_version, read.window_opens, read.failed) == ("v2", T0, status.failed)
    assert visible_changes(read, status) == ()
    assert from_api({"failedVersion": "garbage"}).failed is None

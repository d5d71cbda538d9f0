import json
from datetime import UTC, datetime, timedelta

import pytest

from flotta.agent.osupdate.errors import OstreeStatusError
from flotta.agent.osupdate.ostree import Deployment, OstreeStatus, parse_status
from flotta.agent.osupdate.planning import StepKind, next_step, verdict_after_boot
from flotta.agent.osupdate.state import UpdateState
from flotta.schemas.wire import OsInformation

A, B = "a" * 64, "b" * 64
NOW = datetime(2026, 1, 1, tzinfo=UTC)

STATUS_JSON = json.dumps(
    {
        "deployments": [
            {
                "id": "x-b.1",
                "osname": "fedora-iot",
                "checksum": B,
                "booted": False,
                "staged": True,
                "origin": "fedora:fedora/iot",
                "version": "39.2",
                "requested-packages": [],
            },
            {
                "id": "x-a.0",
                "osname": "fedora-iot",
                "checksum": A,
                "booted": True,
                "staged": False,
                "origin": "fedora:fedora/iot",
                "version": "39.1",
            },
        ],
        "transaction": None,
    }
)


def status(*deployments: Deployment) -> OstreeStatus:
    return OstreeStatus(tuple(deployments))


def test_parse_status_finds_booted_and_pending() -> None:
    parsed = parse_status(STATUS_JSON)
    assert parsed.booted == Deployment(A, booted=True, origin="fedora:fedora/iot", version="39.1")
    assert parsed.pending is not None
    assert parsed.pending.checksum == B
    assert parsed.pending.staged
    assert parsed.has(B)


def test_no_pending_when_the_booted_deployment_is_first() -> None:
    assert status(Deployment(A, booted=True), Deployment(B)).pending is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[]", "no deployments list"),
        ('{"deployments": [1]}', "not an object"),
        ('{"deployments": [{"booted": true}]}', "no checksum"),
    ],
)
def test_parse_status_rejects_unexpected_output(text: str, reason: str) -> None:
    with pytest.raises(OstreeStatusError, match=reason):
        parse_status(text)


def test_verdict_succeeded_failed_and_not_yet() -> None:
    waiting = UpdateState(requested_commit=B, phase="rebooting", boot_id="boot-1")
    booted_new = status(Deployment(B, booted=True), Deployment(A))
    rolled_back = status(Deployment(A, booted=True), Deployment(B))
    gone = status(Deployment(A, booted=True))
    assert verdict_after_boot(waiting, booted_new, "boot-1") is None  # same boot
    succeeded = verdict_after_boot(waiting, booted_new, "boot-2")
    assert succeeded is not None
    assert succeeded.status == "Succeeded"
    failed = verdict_after_boot(waiting, rolled_back, "boot-2")
    assert failed is not None
    assert failed.status == "Failed"
    assert "deployed but not booted" in failed.message
    not_deployed = verdict_after_boot(waiting, gone, "boot-2")
    assert not_deployed is not None
    assert not_deployed.status == "Failed"
    assert verdict_after_boot(UpdateState(), booted_new, "boot-2") is None


def test_next_step() -> None:
    on_a = status(Deployment(A, booted=True))
    b_pending = status(Deployment(B), Deployment(A, booted=True))
    want_b = OsInformation(commit_id=B)
    idle = UpdateState()
    assert next_step(OsInformation(), on_a, idle, now=NOW).kind is StepKind.NOTHING
    assert (
        next_step(OsInformation(automatically_upgrade=True), on_a, idle, now=NOW).kind
        is StepKind.UPGRADE
    )
    assert next_step(OsInformation(commit_id=A), on_a, idle, now=NOW).kind is StepKind.NOTHING
    assert next_step(want_b, on_a, idle, now=NOW).kind is StepKind.DEPLOY
    assert next_step(want_b, b_pending, idle, now=NOW).kind is StepKind.REBOOT
    failed = UpdateState(failed_commit=B)
    assert next_step(want_b, on_a, failed, now=NOW).kind is StepKind.NOTHING
    later = (NOW + timedelta(minutes=5)).isoformat()
    waiting = UpdateState(requested_commit=B, retry_not_before=later)
    assert next_step(want_b, on_a, waiting, now=NOW).kind is StepKind.NOTHING
    assert next_step(want_b, on_a, waiting, now=NOW + timedelta(minutes=6)).kind is StepKind.DEPLOY

"""What to do about the requested OS: pure decisions over the deployments and the state."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flotta.agent.osupdate.ostree import OstreeStatus
from flotta.agent.osupdate.state import UpdateState
from flotta.schemas.wire import OsInformation


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Literal["Succeeded", "Failed"]
    commit: str
    message: str


def verdict_after_boot(state: UpdateState, status: OstreeStatus, boot_id: str) -> Verdict | None:
    """Once a reboot for a requested commit happened: did the device come up on it?"""
    if state.phase != "rebooting" or not state.requested_commit or state.boot_id == boot_id:
        return None
    commit = state.requested_commit
    booted = status.booted
    if booted is not None and booted.checksum == commit:
        return Verdict("Succeeded", commit, f"booted into {commit}")
    if status.has(commit):
        return Verdict(
            "Failed",
            commit,
            f"{commit} is deployed but not booted: the boot failed its health checks and "
            f"the device rolled back to {booted.checksum if booted else 'another deployment'}",
        )
    return Verdict("Failed", commit, f"{commit} is not deployed after the reboot")


class StepKind(enum.Enum):
    NOTHING = "nothing"
    DEPLOY = "deploy"
    UPGRADE = "upgrade"
    REBOOT = "reboot"


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    commit: str = ""
    reason: str = ""


def next_step(
    request: OsInformation, status: OstreeStatus, state: UpdateState, *, now: datetime
) -> Step:
    booted = status.booted.checksum if status.booted else ""
    target = request.commit_id
    if not target:
        if request.automatically_upgrade:
            return Step(StepKind.UPGRADE, reason="automatic upgrades are on")
        return Step(StepKind.NOTHING, reason="no commit requested")
    if target == booted:
        return Step(StepKind.NOTHING, target, "the requested commit is booted")
    if target == state.failed_commit:
        return Step(StepKind.NOTHING, target, "the requested commit failed before")
    retry_at = parse_time(state.retry_not_before)
    if retry_at is not None and state.requested_commit == target and now < retry_at:
        return Step(StepKind.NOTHING, target, "waiting before trying again")
    pending = status.pending
    if pending is not None and pending.checksum == target:
        return Step(StepKind.REBOOT, target, "the requested commit is deployed, not booted")
    return Step(StepKind.DEPLOY, target, "the requested commit is not deployed")


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None

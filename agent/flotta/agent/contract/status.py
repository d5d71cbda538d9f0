"""``flotta/devices/{id}/status``: the heartbeat (see :mod:`flotta.schemas.wire.status`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.agent.contract.base import (
    KiB,
    Name,
    NonNegative,
    Payload,
    ShortText,
    Text,
    Time,
    WireStruct,
)
from flotta.agent.contract.hardware import Hardware

WorkloadPhase = Literal[
    "Pending", "Deploying", "Running", "Exited", "Failed", "Stopped", "Removing", "Unknown"
]
UpgradeStatus = Literal["", "InProgress", "Succeeded", "Failed", "Unsupported"]
CommitId = Annotated[str, msgspec.Meta(max_length=128)]


class WorkloadReport(WireStruct, frozen=True, kw_only=True):
    name: Name
    phase: WorkloadPhase
    message: Text = ""
    since: Time | None = None
    last_data_upload: Time | None = None


class HardwareReport(WireStruct, frozen=True, kw_only=True):
    """``full`` replaces the recorded inventory; ``delta`` replaces only the sections it has."""

    scope: Literal["full", "delta"]
    hardware: Hardware


class UpgradeReport(WireStruct, frozen=True, kw_only=True):
    supported: bool
    current_commit_id: CommitId = msgspec.field(default="", name="currentCommitID")
    requested_commit_id: CommitId = msgspec.field(default="", name="requestedCommitID")
    last_upgrade_status: UpgradeStatus = ""
    last_upgrade_time: Time | None = None
    message: Text = ""


class TelemetryBuffer(WireStruct, frozen=True, kw_only=True):
    buffered_records: NonNegative = 0
    dropped_records: NonNegative = 0


class StatusReport(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "status"
    MAX_BYTES: ClassVar[int] = 128 * KiB

    time: Time
    applied_version: ShortText = ""
    heartbeat_period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    workloads: Annotated[list[WorkloadReport], msgspec.Meta(max_length=256)] = msgspec.field(
        default_factory=list
    )
    hardware: HardwareReport | None = None
    upgrade: UpgradeReport | None = None
    telemetry: TelemetryBuffer | None = None
    certificate_not_after: Time | None = None

"""``flotta/devices/{id}/status``: the heartbeat."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import WireModel
from flotta.schemas.crd.hardware import Hardware
from flotta.schemas.scalars import Count, Time
from flotta.schemas.wire.common import KiB, Payload, ShortText, Text

WorkloadPhase = Literal[
    "Pending", "Deploying", "Running", "Exited", "Failed", "Stopped", "Removing", "Unknown"
]
UpgradeStatus = Literal["", "InProgress", "Succeeded", "Failed", "Unsupported"]


class WorkloadReport(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    phase: WorkloadPhase
    message: Text = ""
    since: Time | None = None
    last_data_upload: Time | None = None


class HardwareReport(WireModel):
    """``full`` replaces the recorded inventory; ``delta`` replaces only the sections it has."""

    scope: Literal["full", "delta"]
    hardware: Hardware


class UpgradeReport(WireModel):
    supported: bool
    current_commit_id: Annotated[str, Field(alias="currentCommitID", max_length=128)] = ""
    requested_commit_id: Annotated[str, Field(alias="requestedCommitID", max_length=128)] = ""
    last_upgrade_status: UpgradeStatus = ""
    last_upgrade_time: Time | None = None
    message: Text = ""


class TelemetryBuffer(WireModel):
    buffered_records: Count = 0
    dropped_records: Count = 0


class StatusReport(Payload):
    KIND: ClassVar[str] = "status"
    MAX_BYTES: ClassVar[int] = 128 * KiB

    time: Time
    applied_version: ShortText = ""
    heartbeat_period_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    workloads: Annotated[list[WorkloadReport], Field(max_length=256)] = Field(default_factory=list)
    hardware: HardwareReport | None = None
    upgrade: UpgradeReport | None = None
    telemetry: TelemetryBuffer | None = None
    certificate_not_after: Time | None = None

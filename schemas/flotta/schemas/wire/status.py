"""``flotta/devices/{id}/status``: the heartbeat."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.schemas.wire.common import (
    Count,
    Integer,
    KiB,
    Name,
    Payload,
    ShortText,
    Text,
    Time,
    WireStruct,
    normalise_times,
)
from flotta.schemas.wire.hardware import Hardware

WorkloadPhase = Literal[
    "Pending", "Deploying", "Running", "Exited", "Failed", "Stopped", "Removing", "Unknown"
]
UpgradeStatus = Literal["", "InProgress", "Succeeded", "Failed", "Unsupported"]
CommitId = Annotated[str, msgspec.Meta(max_length=128)]


class WorkloadReport(WireStruct, frozen=True, kw_only=True):
    """One workload of the desired state, as the device runs it."""

    name: Name
    """The workload's name in the desired state."""
    phase: WorkloadPhase
    """``Running`` when every container runs; ``Pending`` / ``Deploying`` on the way;
    ``Exited``, ``Failed``, ``Stopped`` otherwise; ``Removing`` while it goes."""
    message: Text = ""
    """Why it is not running, for a person (an image pull error, an exit code)."""
    since: Time | None = None
    """When the workload entered this phase."""
    last_data_upload: Time | None = None
    """Upstream Flotta's last data sync time (not produced by this agent)."""

    def __post_init__(self) -> None:
        normalise_times(self, "since", "last_data_upload")


class HardwareReport(WireStruct, frozen=True, kw_only=True):
    """``full`` replaces the recorded inventory; ``delta`` replaces only the sections it has."""

    scope: Literal["full", "delta"]
    """As the desired ``configuration.heartbeat.hardwareProfile.scope`` asks."""
    hardware: Hardware
    """Upstream Flotta's hardware inventory, as in the EdgeDevice's ``status.hardware``;
    fields beyond the listed ones are ignored."""


class UpgradeReport(WireStruct, frozen=True, kw_only=True):
    """The OS image (rpm-ostree) as the device runs it."""

    supported: bool
    """False where the OS cannot be updated as an image (then the rest is empty)."""
    current_commit_id: CommitId = msgspec.field(default="", name="currentCommitID")
    """The booted OS commit."""
    requested_commit_id: CommitId = msgspec.field(default="", name="requestedCommitID")
    """The commit the desired state asks for, while an upgrade is pending or failed."""
    last_upgrade_status: UpgradeStatus = ""
    """How the last upgrade went; empty when there was none."""
    last_upgrade_time: Time | None = None
    """When the last upgrade finished."""
    message: Text = ""
    """Why an upgrade failed, for a person."""

    def __post_init__(self) -> None:
        normalise_times(self, "last_upgrade_time")


class TelemetryBuffer(WireStruct, frozen=True, kw_only=True):
    """The device's on-disk buffer of metrics and logs not yet confirmed by a receipt."""

    buffered_records: Count = 0
    """Samples and log lines waiting in the buffer."""
    dropped_records: Count = 0
    """Records the buffer dropped (full) since the device started."""


FailureReason = Literal[
    "image-pull-failed",
    "container-exited",
    "crash-loop",
    "health-check-failed",
    "timed-out",
    "apply-failed",
]


class VersionFailure(WireStruct, frozen=True, kw_only=True):
    """A desired state version the device tried, found unhealthy and rolled back from. The
    device never applies this version again unless a desired state carries a greater
    ``retry``; a newer version is applied as usual."""

    version: ShortText
    """The ``version`` of the desired state that failed."""
    reason: FailureReason
    """Why: ``image-pull-failed`` (an image could not be pulled), ``container-exited`` (a
    container ended), ``crash-loop`` (a container restarted), ``health-check-failed`` (a
    probe failed), ``timed-out`` (not healthy within ``timeoutSeconds``), ``apply-failed``
    (Podman refused the pod)."""
    workload: ShortText = ""
    """The workload that failed; empty when the failure was not one workload's."""
    container: ShortText = ""
    """The container that failed, within that workload; empty when unknown."""
    exit_code: Integer | None = None
    """The container's exit code, when it exited."""
    message: Text = ""
    """For a person: the probe's output, the pull error or Podman's error (bounded)."""
    time: Time
    """When the device found the version failed."""
    rolled_back: bool = False
    """True once the device runs its last known good version again (``appliedVersion``)."""
    retry: Count = 0
    """The desired state's ``retry`` token the version failed under: the device applies the
    version again once a desired state carries a greater one. A control plane that asked for
    a greater one counts this failure as past."""

    def __post_init__(self) -> None:
        normalise_times(self, "time")


class StatusReport(Payload, frozen=True, kw_only=True):
    """The heartbeat: sent (QoS 1, not retained) after every connect and then every
    ``configuration.heartbeat.periodSeconds`` of the desired state (60 s before the first).
    A device that misses three periods is marked Offline."""

    KIND: ClassVar[str] = "status"
    MAX_BYTES: ClassVar[int] = 128 * KiB

    time: Time
    """When the device wrote the report; a report older than one already applied is skipped."""
    applied_version: ShortText = ""
    """The ``version`` of the desired state the device runs and saw pass its health gate
    (its last known good); empty before the first."""
    applying_version: ShortText = ""
    """The ``version`` being applied or verified against its health gate now, or being
    rolled back from; empty when none."""
    waiting_version: ShortText = ""
    """A ``version`` received (its images pulled ahead) that waits for the update window."""
    window_opens: Time | None = None
    """When the update window next opens, while a version waits for it."""
    failed: VersionFailure | None = None
    """The latest version that failed its health gate; kept until a newer version is
    applied healthy."""
    heartbeat_period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    """The period the device sends heartbeats at, for information: liveness is judged by the
    period the device was told."""
    workloads: Annotated[list[WorkloadReport], msgspec.Meta(max_length=256)] = msgspec.field(
        default_factory=list
    )
    """Every workload of the applied desired state."""
    hardware: HardwareReport | None = None
    """The hardware inventory, when the desired heartbeat configuration asks for it and it
    changed (or in the first report after a start)."""
    upgrade: UpgradeReport | None = None
    """The OS image's state; absent when the device does not report it."""
    telemetry: TelemetryBuffer | None = None
    """The telemetry buffer's fill; absent when the device buffers nothing."""
    certificate_not_after: Time | None = None
    """When the device's certificate expires (the operator renews it before that)."""

    def __post_init__(self) -> None:
        normalise_times(self, "time", "window_opens", "certificate_not_after")


def failure_place(workload: str, container: str, exit_code: int | None) -> str:
    """Where a version failed, as VersionFailed events word it: " in workload W, container C,
    exit code N" (each part only when known)."""
    return "".join(
        (
            f" in workload {workload}" if workload else "",
            f", container {container}" if container else "",
            f", exit code {exit_code}" if exit_code is not None else "",
        )
    )

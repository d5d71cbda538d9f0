"""EdgeDevice: one enrolled device."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, Resource
from flotta.schemas.crd.config import DeviceConfiguration
from flotta.schemas.crd.hardware import StoredHardware

DevicePhase = Literal["Enrolled", "Online", "Offline", "Deregistering", "Unknown"]


class EdgeDeviceSpec(DeviceConfiguration):
    """The device's own configuration. When the device is labelled flotta/member-of: <set>
    and that EdgeDeviceSet exists, the set's sections apply instead, each as a whole."""

    request_time: datetime | None = None
    """When the device's enrolment was approved and the operator created this EdgeDevice.
    Informational; not part of the device's configuration."""


class WorkloadStatus(ApiModel):
    """One workload on the device, as the device last reported it."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The EdgeWorkload's name (the pod's name on the device)."""
    phase: Annotated[str, Field(max_length=64)] = "Unknown"
    """Pending, Deploying, Running, Exited, Failed, Stopped, Removing or Unknown; the
    workload's Running and Failed counts and the WorkloadsReady condition follow from it."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """Why the workload is in its phase, when the device says (for example an error)."""
    last_transition_time: datetime | None = None
    """When the phase last changed."""
    last_data_upload: datetime | None = None
    """Upstream: the last time the workload's data was synced. Kept when a device reports
    it; this agent does no data sync and never reports it, so it stays unset."""


class UpgradeInformation(ApiModel):
    """The device's OS (rpm-ostree) state, as the device reports it."""

    current_commit_id: Annotated[str, Field(alias="currentCommitID")] = ""
    """The rpm-ostree commit the device has booted."""
    last_upgrade_status: str = ""
    """How the last OS upgrade went: InProgress, Succeeded, Failed or Unsupported."""
    last_upgrade_time: datetime | None = None
    """When the last OS upgrade finished or failed."""
    supported: bool | None = None
    """Whether the device can upgrade its OS at all (false when rpm-ostree is absent)."""


class FailedVersion(ApiModel):
    """A desired version the device tried, found unhealthy and rolled back from, as the
    device reported it; the device applies that version again only on a retry of the
    rollout."""

    version: Annotated[str, Field(max_length=256)] = ""
    """The version (content hash) that failed."""
    reason: Annotated[str, Field(max_length=64)] = ""
    """image-pull-failed, container-exited, crash-loop, health-check-failed, timed-out or
    apply-failed."""
    workload: Annotated[str, Field(max_length=256)] = ""
    """The workload that failed; empty when the failure was not one workload's."""
    container: Annotated[str, Field(max_length=256)] = ""
    """The container that failed, within that workload; empty when unknown."""
    exit_code: int | None = None
    """The container's exit code, when it exited."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """The probe's output, the pull error or Podman's error, shortened."""
    time: datetime | None = None
    """When the device found the version failed."""
    rolled_back: bool = False
    """True once the device runs its last known good version (appliedVersion) again."""
    retry: Annotated[int, Field(ge=0)] = 0
    """The retry token of the desired state the version failed under; a rollout retried
    since then (flotta.io/retry-rollout) counts this failure as past."""


class CertificateInformation(ApiModel):
    """The client certificate the operator last signed for the device."""

    serial: str = ""
    """The certificate's serial number (hexadecimal); revoked when the EdgeDevice is
    deleted."""
    not_after: datetime | None = None
    """When the certificate expires; the device renews it before then."""


class EdgeDeviceStatus(ApiModel):
    """What the device reports (written by the bridge) and what the operator published
    for it."""

    phase: DevicePhase | None = None
    """Enrolled (created, not heard from yet), Online or Offline (bridge, from the device's
    heartbeats and connection), Unknown (operator: no bridge is alive). Deregistering is
    accepted for upstream compatibility but not written."""
    last_seen_time: datetime | None = None
    """When the bridge last heard from the device."""
    last_synced_resource_version: str = ""
    """Upstream's record of the last configuration the device fetched. Accepted for
    compatibility; not written (see desiredVersion and appliedVersion)."""
    desired_version: str = ""
    """The version (a content hash) of the desired state the operator last published for
    the device: its configuration and workloads."""
    desired_heartbeat_period_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    """The heartbeat period in the configuration published as desiredVersion (the
    device's, else its set's, else 60); the bridge counts missed heartbeats with it."""
    applied_version: str = ""
    """The version of the desired state the device reports to have applied and seen pass its
    health gate; equal to desiredVersion once the device caught up (condition ConfigApplied)."""
    applying_version: str = ""
    """The version the device is applying or checking against its health gate now (or
    rolling back from); empty when none."""
    waiting_version: str = ""
    """A version the device received (images pulled) that waits for its update window."""
    window_opens: datetime | None = None
    """When the device's update window next opens, while a version waits for it."""
    failed_version: FailedVersion | None = None
    """The latest version that failed its health gate on the device, and why; kept until a
    newer version is applied healthy."""
    desired_revisions: dict[str, str] | None = None
    """For each rollout that covers the device (kind/name of its EdgeWorkload or
    EdgeDeviceSet), the revision that desiredVersion carries (written by the operator with
    desiredVersion)."""
    hardware: StoredHardware | None = None
    """The device's hardware inventory as last reported; some of it is also copied into
    device.* labels on the EdgeDevice."""
    workloads: list[WorkloadStatus] | None = None
    """Each workload on the device with its phase, as the device last reported."""
    upgrade_information: UpgradeInformation | None = None
    """The device's OS commit and how its last OS upgrade went."""
    certificate: CertificateInformation | None = None
    """The device's current client certificate (written by the operator when it signs one)."""
    conditions: list[Condition] | None = None
    """Online, ConfigApplied, WorkloadsReady and Ready (see docs/crds.md); Ready is what
    kubectl wait --for=condition=Ready waits for. UnsupportedFields (written by the
    operator) while the configuration in effect sets upstream fields no device acts on."""
    observed_generation: int | None = None
    """The metadata.generation the bridge's conditions were computed for."""


class EdgeDevice(Resource):
    """An enrolled device: its configuration (spec) and what it reports (status)."""

    KIND: ClassVar[str] = "EdgeDevice"
    PLURAL: ClassVar[str] = "edgedevices"

    kind: str = "EdgeDevice"
    spec: EdgeDeviceSpec = Field(default_factory=EdgeDeviceSpec)
    """The device's configuration: heartbeat, metrics, log destinations, OS commit, mounts.
    A set the device belongs to supplies these instead."""
    status: EdgeDeviceStatus | None = None
    """What the device reports and what was published for it; written by the bridge and the
    operator."""

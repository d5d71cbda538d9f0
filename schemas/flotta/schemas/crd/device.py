"""EdgeDevice: one enrolled device."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, Resource
from flotta.schemas.crd.config import DeviceConfiguration
from flotta.schemas.crd.hardware import Hardware

DevicePhase = Literal["Enrolled", "Online", "Offline", "Deregistering", "Unknown"]


class EdgeDeviceSpec(DeviceConfiguration):
    request_time: datetime | None = None


class WorkloadStatus(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    phase: Annotated[str, Field(max_length=64)] = "Unknown"
    message: Annotated[str, Field(max_length=1024)] = ""
    last_transition_time: datetime | None = None
    last_data_upload: datetime | None = None


class UpgradeInformation(ApiModel):
    current_commit_id: Annotated[str, Field(alias="currentCommitID")] = ""
    last_upgrade_status: str = ""
    last_upgrade_time: datetime | None = None
    supported: bool | None = None


class CertificateInformation(ApiModel):
    serial: str = ""
    not_after: datetime | None = None


class EdgeDeviceStatus(ApiModel):
    phase: DevicePhase | None = None
    last_seen_time: datetime | None = None
    last_synced_resource_version: str = ""
    desired_version: str = ""
    # The heartbeat period of the configuration published as ``desired_version`` (device,
    # else set, else default): what the bridge's liveness counts with, whatever the device says.
    desired_heartbeat_period_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    applied_version: str = ""
    hardware: Hardware | None = None
    workloads: list[WorkloadStatus] | None = None
    upgrade_information: UpgradeInformation | None = None
    certificate: CertificateInformation | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class EdgeDevice(Resource):
    """An enrolled device: its configuration (spec) and what it reports (status)."""

    KIND: ClassVar[str] = "EdgeDevice"
    PLURAL: ClassVar[str] = "edgedevices"

    kind: str = "EdgeDevice"
    spec: EdgeDeviceSpec = Field(default_factory=EdgeDeviceSpec)
    status: EdgeDeviceStatus | None = None

"""Configuration sections that an EdgeDevice and an EdgeDeviceSet both carry."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel


class HardwareProfile(ApiModel):
    include: bool = True
    scope: Literal["full", "delta"] = "full"


class HeartbeatConfiguration(ApiModel):
    period_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    hardware_profile: HardwareProfile | None = None


class OsInformation(ApiModel):
    automatically_upgrade: bool = False
    commit_id: Annotated[str, Field(alias="commitID", max_length=128)] = ""
    hosted_objects_url: Annotated[str, Field(alias="hostedObjectsURL", max_length=2048)] = ""


class MetricsRetention(ApiModel):
    max_mi_b: Annotated[int, Field(alias="maxMiB", ge=0)] = 200
    max_hours: Annotated[int, Field(ge=0)] = 168


class NameRef(ApiModel):
    """A reference by name to an object in the same namespace (a ConfigMap or a Secret)."""

    name: Annotated[str, Field(min_length=1, max_length=253)]


class SystemMetricsConfiguration(ApiModel):
    interval: Annotated[int, Field(ge=1, le=86400)] = 60
    allow_list: NameRef | None = None
    disabled: bool = False


class DataTransferMetricsConfiguration(ApiModel):
    interval: Annotated[int, Field(ge=1, le=86400)] = 60
    disabled: bool = False


class MetricsReceiverConfiguration(ApiModel):
    url: Annotated[str, Field(max_length=2048)] = ""
    request_num_samples: Annotated[int, Field(ge=1)] = 30000
    timeout_seconds: Annotated[int, Field(ge=1)] = 10
    ca_secret_name: str = ""


class MetricsConfiguration(ApiModel):
    retention: MetricsRetention | None = None
    system: SystemMetricsConfiguration | None = None
    data_transfer: DataTransferMetricsConfiguration | None = None
    receiver_configuration: MetricsReceiverConfiguration | None = None


class SyslogConfig(ApiModel):
    """Upstream: the name of a ConfigMap with the syslog server's address and protocol."""

    name: Annotated[str, Field(min_length=1, max_length=253)]


class LogCollectionConfig(ApiModel):
    kind: Literal["syslog", "mqtt"] = "syslog"
    buffer_size: Annotated[int, Field(ge=1, le=1048576)] = 12
    syslog_config: SyslogConfig | None = None


class Mount(ApiModel):
    device: Annotated[str, Field(min_length=1, max_length=4096)]
    folder: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]
    type: Annotated[str, Field(min_length=1, max_length=64)]
    options: Annotated[str, Field(max_length=4096)] = ""


class S3Storage(ApiModel):
    secret_name: str = ""
    config_map_name: str = ""
    create_obc: Annotated[bool, Field(alias="createOBC")] = False


class Storage(ApiModel):
    s3: S3Storage | None = None


class DeviceConfiguration(ApiModel):
    """The sections that a set, when the device belongs to one, supplies instead of the device."""

    heartbeat: HeartbeatConfiguration | None = None
    metrics: MetricsConfiguration | None = None
    log_collection: dict[str, LogCollectionConfig] | None = None
    os_information: OsInformation | None = None
    mounts: list[Mount] | None = None
    storage: Storage | None = None

"""Configuration sections that an EdgeDevice and an EdgeDeviceSet both carry. The sections the
device reads as they are (heartbeat, OS information, mounts) are its wire structs
(:mod:`flotta.schemas.wire.desired`), defined once there."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.rollout import UpdatePolicy
from flotta.schemas.crd.wire_field import WireField
from flotta.schemas.wire.desired import HeartbeatConfiguration, Mount, OsInformation


class MetricsRetention(ApiModel):
    """Limits of the device's on-disk telemetry buffer, which holds metrics and logs until
    they are delivered (for example while the device is offline)."""

    max_mi_b: Annotated[int, Field(alias="maxMiB", ge=0)] = 200
    """The buffer's size limit in MiB (default 200); when full, the oldest records are
    dropped. 0: only the device's own limit applies."""
    max_hours: Annotated[int, Field(ge=0)] = 168
    """How many hours a record may wait in the buffer before it is dropped (default 168, a
    week). 0: no age limit."""


class NameRef(ApiModel):
    """A reference by name to an object in the same namespace (a ConfigMap or a Secret)."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The object's name, in the namespace of the resource that refers to it."""


class SystemMetricsConfiguration(ApiModel):
    """The device's own metrics (CPU, memory, disks, network), with node_exporter names."""

    interval: Annotated[int, Field(ge=1, le=86400)] = 60
    """Seconds between samples (default 60)."""
    allow_list: NameRef | None = None
    """A ConfigMap whose key metrics_list.yaml lists the metric names to keep (under
    `names:`); unset, missing or unreadable: every metric is kept."""
    disabled: bool = False
    """True: the device collects no system metrics."""


class DataTransferMetricsConfiguration(ApiModel):
    """Upstream Flotta's metrics about data synchronisation. Accepted for compatibility with
    upstream manifests; not acted on (there is no data sync) and not sent to the device. The
    EdgeDevice's UnsupportedFields condition names it while it is set."""

    interval: Annotated[int, Field(ge=1, le=86400)] = 60
    """Upstream: seconds between samples. Stored only; not acted on."""
    disabled: bool = False
    """Upstream: true turns these metrics off. Stored only; not acted on."""


class MetricsReceiverConfiguration(ApiModel):
    """The Prometheus remote-write receiver this device's metrics go to, as upstream Flotta
    defines it. The device sends its metrics over MQTT as always; the exporter (flotta
    exporter run) writes them to this receiver instead of its default one
    (docs/telemetry.md)."""

    url: Annotated[str, Field(max_length=2048)] = ""
    """The remote-write URL (for Prometheus http(s)://HOST:9090/api/v1/write); empty: the
    exporter's default receiver."""
    request_num_samples: Annotated[int, Field(ge=1)] = 30000
    """At most this many samples in one remote-write request."""
    timeout_seconds: Annotated[int, Field(ge=1)] = 10
    """The timeout of one remote-write request, in seconds."""
    ca_secret_name: str = ""
    """A Secret in the device's namespace whose ca.crt is the CA the receiver's certificate
    is checked against; until it can be read, the metrics wait in JetStream."""


class MetricsConfiguration(ApiModel):
    """What metrics the device collects and how long it keeps them while they wait."""

    retention: MetricsRetention | None = None
    """Limits of the device's telemetry buffer; unset: 200 MiB and 168 hours."""
    system: SystemMetricsConfiguration | None = None
    """The device's own metrics; unset: collected every 60 seconds, all of them."""
    data_transfer: DataTransferMetricsConfiguration | None = None
    """Upstream's data-sync metrics. Accepted for compatibility; not acted on (named in the
    EdgeDevice's UnsupportedFields condition)."""
    receiver_configuration: MetricsReceiverConfiguration | None = None
    """The Prometheus remote-write receiver the exporter writes this device's metrics to;
    unset: the exporter's default receiver."""


class SyslogConfig(ApiModel):
    """Upstream: the name of a ConfigMap with the syslog server's address and protocol."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The ConfigMap's name (same namespace), with keys Address (host:port) and Protocol
    (tcp, tls or udp). The device sends the logs over MQTT; the exporter forwards the lines
    of the workloads that name this entry to that server (docs/telemetry.md)."""


class LogCollectionConfig(ApiModel):
    """One log destination that workloads can name in their logCollection."""

    kind: Literal["syslog", "mqtt"] = "syslog"
    """The transport: syslog (upstream's: the exporter forwards the lines to the server of
    syslogConfig) or mqtt (no syslog server). The device sends every log over MQTT."""
    buffer_size: Annotated[int, Field(ge=1, le=1048576)] = 12
    """Upstream: the size in KiB of the device's log buffer for this destination (default
    12): the lines for it waiting in the device's telemetry buffer keep at most this much,
    the oldest dropped and counted."""
    syslog_config: SyslogConfig | None = None
    """For kind syslog: the ConfigMap with the syslog server's address and protocol."""


class S3Storage(ApiModel):
    """Upstream Flotta's S3 bucket for syncing workload data. Accepted for compatibility with
    upstream manifests; not acted on (there is no data sync). The EdgeDevice's
    UnsupportedFields condition names it while it is set."""

    secret_name: str = ""
    """Upstream: a Secret with the bucket's credentials. Stored only; not acted on."""
    config_map_name: str = ""
    """Upstream: a ConfigMap with the bucket's address and name. Stored only; not acted on."""
    create_obc: Annotated[bool, Field(alias="createOBC")] = False
    """Upstream: create an ObjectBucketClaim for the device. Stored only; not acted on."""


class Storage(ApiModel):
    """Where upstream Flotta synced workload data. Accepted for compatibility; not acted on."""

    s3: S3Storage | None = None
    """Upstream's S3 bucket. Stored only; not acted on."""


class DeviceConfiguration(ApiModel):
    """The sections that a set, when the device belongs to one, supplies instead of the device."""

    heartbeat: Annotated[HeartbeatConfiguration, WireField()] | None = None
    """How often the device reports and whether reports carry hardware; unset: every 60
    seconds, with the whole inventory."""
    metrics: MetricsConfiguration | None = None
    """What metrics the device collects and how long it buffers them; unset: defaults."""
    log_collection: dict[str, LogCollectionConfig] | None = None
    """Named log destinations; a workload's logCollection picks one by name, and the device
    then collects that workload's container logs."""
    os_information: Annotated[OsInformation, WireField()] | None = None
    """Which rpm-ostree commit the device runs, and whether it upgrades by itself."""
    mounts: list[Annotated[Mount, WireField()]] | None = None
    """Upstream's block devices to mount. Accepted for compatibility and sent to the device,
    whose agent mounts nothing; the EdgeDevice's UnsupportedFields condition names them
    while they are set."""
    storage: Storage | None = None
    """Upstream's data-sync storage. Accepted for compatibility; not acted on and not sent to
    the device (named in the EdgeDevice's UnsupportedFields condition)."""
    update_policy: UpdatePolicy | None = None
    """When the device applies new versions (an update window); unset: at once."""

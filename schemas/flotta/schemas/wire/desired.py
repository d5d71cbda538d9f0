"""``flotta/devices/{id}/desired``: everything the device should be and run, retained.

``version`` is a content hash of the rest of the payload but ``retry`` (see
:func:`flotta.schemas.codec.content_version`): the device compares versions, never contents.
Secrets travel sealed for the device's key, so the broker's store holds no plain secret.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from flotta.schemas.wire.common import (
    ApiStruct,
    Count,
    KiB,
    Name,
    Payload,
    ShortText,
    WireStruct,
)

SealingAlgorithm = Literal["ECDH-P256+HKDF-SHA256+A256GCM"]
SEALING_ALGORITHM: SealingAlgorithm = "ECDH-P256+HKDF-SHA256+A256GCM"


# The configuration sections an EdgeDevice and an EdgeDeviceSet store as they are (their CRD
# models hold these structs, flotta.schemas.crd.config): unknown fields are ignored.


class HardwareProfile(ApiStruct, frozen=True, kw_only=True):
    """What hardware inventory the device puts in its heartbeats."""

    include: bool = True
    """Whether heartbeats carry the hardware inventory at all; false: the device never sends
    it and status.hardware stays as it was."""
    scope: Literal["full", "delta"] = "full"
    """full: every heartbeat carries the whole inventory; delta: the whole inventory once,
    then only the sections that changed."""


class HeartbeatConfiguration(ApiStruct, frozen=True, kw_only=True):
    """How often the device reports, and what its reports carry."""

    period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    """Seconds between the device's heartbeats (default 60). The bridge marks the device
    Offline after three periods without one."""
    hardware_profile: HardwareProfile | None = None
    """What hardware inventory the heartbeats carry; unset: the whole inventory every time."""


class OsInformation(ApiStruct, frozen=True, kw_only=True):
    """Which rpm-ostree commit the device should run; devices without rpm-ostree report
    upgrades as unsupported."""

    automatically_upgrade: bool = False
    """When no commitID is set: the device upgrades by itself (rpm-ostree upgrade from its
    configured remote) and reboots into a new commit when there is one."""
    commit_id: Annotated[str, msgspec.Meta(max_length=128)] = msgspec.field(
        default="", name="commitID"
    )
    """The rpm-ostree commit the device should boot; the device deploys it and reboots
    into it. Empty: no particular commit."""
    hosted_objects_url: Annotated[str, msgspec.Meta(max_length=2048)] = msgspec.field(
        default="", name="hostedObjectsURL"
    )
    """The URL of the ostree repository that serves commitID; empty: the device's own
    configured remote."""


class Mount(ApiStruct, frozen=True, kw_only=True):
    """A block device to mount on the device, as upstream Flotta described it."""

    device: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    """The device to mount (for example /dev/sdb1)."""
    folder: Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^/")]
    """The absolute path to mount it at."""
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The filesystem type (for example ext4)."""
    options: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    """Mount options, comma-separated as for mount -o."""


class SealedData(WireStruct, frozen=True, kw_only=True):
    """Bytes encrypted for one device: ECDH (P-256) with an ephemeral key, HKDF-SHA256,
    AES-256-GCM; fields base64 (standard alphabet)."""

    algorithm: SealingAlgorithm = SEALING_ALGORITHM
    """The one sealing scheme of contract v1 (``flotta.pki.sealing`` and docs/contract.md)."""
    ephemeral_public_key: Annotated[str, msgspec.Meta(max_length=256)]
    """The sender's one-time P-256 public key, uncompressed point, base64."""
    nonce: Annotated[str, msgspec.Meta(max_length=64)]
    """The AES-GCM nonce (12 bytes), base64."""
    ciphertext: Annotated[str, msgspec.Meta(max_length=256 * KiB)]
    """The encrypted bytes with the GCM tag appended, base64."""


class SealedSecret(WireStruct, frozen=True, kw_only=True):
    """A Kubernetes Secret the workloads reference; ``data`` is the sealed JSON of its data map."""

    name: Name
    """The Secret's name."""
    data: SealedData
    """The Secret's ``data`` map (keys to base64 values) as JSON, sealed."""


class ConfigMapData(WireStruct, frozen=True, kw_only=True):
    """A ConfigMap a workload references."""

    name: Name
    """The ConfigMap's name."""
    data: dict[str, str] = msgspec.field(default_factory=dict)
    """Its ``data``."""


class WorkloadMetricsSettings(WireStruct, frozen=True, kw_only=True):
    """Where the device scrapes the workload's Prometheus metrics (EdgeWorkload ``metrics``)."""

    path: str = "/"
    """The HTTP path."""
    port: int = 0
    """The port within the pod."""
    interval: int = 60
    """Seconds between scrapes."""
    allow_list: list[str] | None = None
    """Metric names to keep; absent: all."""
    containers: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Per-container settings, as the EdgeWorkload gives them."""


class HealthGate(WireStruct, frozen=True, kw_only=True):
    """When the device counts a new version as healthy, and when it gives up and rolls back
    to the last version it saw healthy."""

    stabilization_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 60
    """Seconds every container must keep running, without an exit or a restart and with its
    health checks passing, before the version counts as healthy (default 60)."""
    timeout_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 300
    """Seconds from the start of the apply after which a version not yet healthy counts as
    failed (reason ``timed-out``) and is rolled back (default 300)."""


class UpdateSchedule(WireStruct, frozen=True, kw_only=True):
    """When the device may apply a new version. Outside the window it downloads (pulls the
    images) and reports the version as waiting, but keeps running the current one."""

    at: Annotated[str, msgspec.Meta(min_length=9, max_length=256)]
    """A 5-field cron expression (minute hour day-of-month month day-of-week) for the
    instants the window opens, for example ``0 2 * * *`` for 02:00 every day."""
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    """The IANA time zone ``at`` is read in (for example ``Europe/Berlin``; default UTC)."""
    start_grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=31 * 86400)] = 0
    """Seconds the window stays open after each instant of ``at``: an apply may start
    within them. 0: the device's default, one hour (3600 s)."""


class DesiredWorkload(WireStruct, frozen=True, kw_only=True):
    """One EdgeWorkload, rendered for this device."""

    name: Name
    """The EdgeWorkload's name: the pod's name on the device."""
    namespace: ShortText
    """The EdgeWorkload's namespace."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """The EdgeWorkload's labels."""
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    """The EdgeWorkload's annotations."""
    pod_spec: dict[str, Any]
    """A Kubernetes PodSpec (as in ``spec.pod.spec``), run with ``podman kube play``."""
    configmaps: list[ConfigMapData] = msgspec.field(default_factory=list)
    """The ConfigMaps the pod references."""
    secrets: list[str] = msgspec.field(default_factory=list)
    """Names of the Secrets (in the desired state's ``secrets``) the pod references."""
    image_registry_auth: SealedData | None = None
    """A sealed container registry auth file for pulling the images."""
    metrics: WorkloadMetricsSettings | None = None
    """Where to scrape the workload's metrics; absent: not scraped."""
    log_collection: ShortText = ""
    """The name of the entry in ``configuration.logCollection`` its logs go to; empty: none."""
    data: dict[str, Any] | None = None
    """Upstream Flotta's data sync paths, as the EdgeWorkload gives them."""
    health: HealthGate | None = None
    """This workload's health gate; absent: ``configuration.health``."""


class SystemMetricsSettings(WireStruct, frozen=True, kw_only=True):
    """The device's own metrics (CPU, memory, disk, network)."""

    interval: int = 60
    """Seconds between samples."""
    disabled: bool = False
    """True: none are collected."""
    allow_list: list[str] | None = None
    """Metric names to keep; absent: all."""


class MetricsSettings(WireStruct, frozen=True, kw_only=True):
    """What the device collects and how long it buffers it while offline."""

    system: SystemMetricsSettings = msgspec.field(default_factory=SystemMetricsSettings)
    """The device's own metrics."""
    retention_max_mib: int = 200
    """The on-disk telemetry buffer's size limit; the oldest records go first."""
    retention_max_hours: int = 168
    """How long a record may wait in the buffer."""


class LogCollectionSettings(WireStruct, frozen=True, kw_only=True):
    """Where workload logs go (upstream Flotta's ``logCollection`` entries)."""

    kind: str = "syslog"
    """The upstream kind."""
    buffer_size_kib: int = 12
    """The device's buffer for this target, KiB."""
    target: dict[str, str] = msgspec.field(default_factory=dict)
    """The data of the ConfigMap that ``syslogConfig`` names (upstream: ``Address``,
    ``Protocol``)."""


class DesiredConfiguration(WireStruct, frozen=True, kw_only=True):
    """The device's configuration: its EdgeDevice's, else its EdgeDeviceSet's, else defaults."""

    heartbeat: HeartbeatConfiguration = msgspec.field(default_factory=HeartbeatConfiguration)
    """``periodSeconds``: how often to send the status report; ``hardwareProfile``: whether
    and how to include the hardware inventory."""
    os: OsInformation = msgspec.field(default_factory=OsInformation)
    """The OS image to run (``commitID``, ``hostedObjectsURL``, ``automaticallyUpgrade``)."""
    mounts: list[Mount] = msgspec.field(default_factory=list)
    """Host mounts, as upstream Flotta's ``storage.mounts``."""
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    """What to collect and buffer."""
    log_collection: dict[str, LogCollectionSettings] = msgspec.field(default_factory=dict)
    """Log targets by name."""
    health: HealthGate = HealthGate()
    """The health gate of every workload that sets none of its own."""
    update_schedule: UpdateSchedule | None = None
    """When the device may apply a new version (workloads and OS); absent: at once."""


class DesiredState(Payload, frozen=True, kw_only=True):
    """Everything the device should be and run (retained, QoS 1): the device applies it when
    ``version`` differs from what it applied, and reports the version it runs."""

    KIND: ClassVar[str] = "desired"
    MAX_BYTES: ClassVar[int] = 512 * KiB

    device_id: Name
    """The device it is for (the id in the topic)."""
    namespace: ShortText
    """The EdgeDevice's namespace."""
    version: Annotated[str, msgspec.Meta(max_length=80)] = ""
    """A content hash of the rest (``retry`` aside): equal versions mean equal contents."""
    retry: Count = 0
    """A retry token: when it is greater than the ``retry`` the device's failed version failed
    under (``failed.retry`` of its status report), the device applies that version once more.
    Not part of ``version``: a retry changes nothing the device runs. Set by the control
    plane only for devices that reported the version failed (0, the default, is left out)."""
    deregister: bool = False
    """True: the EdgeDevice was deleted; the device stops its workloads and forgets its
    identity."""
    configuration: DesiredConfiguration = msgspec.field(default_factory=DesiredConfiguration)
    """The device's configuration."""
    workloads: Annotated[list[DesiredWorkload], msgspec.Meta(max_length=256)] = msgspec.field(
        default_factory=list
    )
    """Every workload the device should run; a workload not listed is removed."""
    secrets: list[SealedSecret] = msgspec.field(default_factory=list)
    """The Secrets the workloads reference, sealed for the device's key."""

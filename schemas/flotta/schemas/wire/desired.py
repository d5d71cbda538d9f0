"""``flotta/devices/{id}/desired``: everything the device should be and run, retained.

``version`` is a content hash of the rest of the payload (see
:func:`flotta.schemas.codec.content_version`): the device compares versions, never contents.
Secrets travel sealed for the device's key, so the broker's store holds no plain secret.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import WireModel
from flotta.schemas.crd.config import HeartbeatConfiguration, Mount, OsInformation
from flotta.schemas.wire.common import KiB, Payload, ShortText

Name = Annotated[str, Field(min_length=1, max_length=253)]


class SealedData(WireModel):
    """Bytes encrypted for one device: ECDH (P-256) with an ephemeral key, HKDF-SHA256,
    AES-256-GCM; fields base64 (standard alphabet)."""

    algorithm: Literal["ECDH-P256+HKDF-SHA256+A256GCM"] = "ECDH-P256+HKDF-SHA256+A256GCM"
    """The one sealing scheme of contract v1 (``flotta.pki.sealing`` and docs/contract.md)."""
    ephemeral_public_key: Annotated[str, Field(max_length=256)]
    """The sender's one-time P-256 public key, uncompressed point, base64."""
    nonce: Annotated[str, Field(max_length=64)]
    """The AES-GCM nonce (12 bytes), base64."""
    ciphertext: Annotated[str, Field(max_length=256 * KiB)]
    """The encrypted bytes with the GCM tag appended, base64."""


class SealedSecret(WireModel):
    """A Kubernetes Secret the workloads reference; ``data`` is the sealed JSON of its data map."""

    name: Name
    """The Secret's name."""
    data: SealedData
    """The Secret's ``data`` map (keys to base64 values) as JSON, sealed."""


class ConfigMapData(WireModel):
    """A ConfigMap a workload references."""

    name: Name
    """The ConfigMap's name."""
    data: dict[str, str] = Field(default_factory=dict)
    """Its ``data``."""


class WorkloadMetricsSettings(WireModel):
    """Where the device scrapes the workload's Prometheus metrics (EdgeWorkload ``metrics``)."""

    path: str = "/"
    """The HTTP path."""
    port: int = 0
    """The port within the pod."""
    interval: int = 60
    """Seconds between scrapes."""
    allow_list: list[str] | None = None
    """Metric names to keep; absent: all."""
    containers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-container settings, as the EdgeWorkload gives them."""


class DesiredWorkload(WireModel):
    """One EdgeWorkload, rendered for this device."""

    name: Name
    """The EdgeWorkload's name: the pod's name on the device."""
    namespace: ShortText
    """The EdgeWorkload's namespace."""
    labels: dict[str, str] = Field(default_factory=dict)
    """The EdgeWorkload's labels."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """The EdgeWorkload's annotations."""
    pod_spec: dict[str, Any]
    """A Kubernetes PodSpec (as in ``spec.pod.spec``), run with ``podman kube play``."""
    configmaps: list[ConfigMapData] = Field(default_factory=list)
    """The ConfigMaps the pod references."""
    secrets: list[str] = Field(default_factory=list)
    """Names of the Secrets (in the desired state's ``secrets``) the pod references."""
    image_registry_auth: SealedData | None = None
    """A sealed container registry auth file for pulling the images."""
    metrics: WorkloadMetricsSettings | None = None
    """Where to scrape the workload's metrics; absent: not scraped."""
    log_collection: ShortText = ""
    """The name of the entry in ``configuration.logCollection`` its logs go to; empty: none."""
    data: dict[str, Any] | None = None
    """Upstream Flotta's data sync paths, as the EdgeWorkload gives them."""


class SystemMetricsSettings(WireModel):
    """The device's own metrics (CPU, memory, disk, network)."""

    interval: int = 60
    """Seconds between samples."""
    disabled: bool = False
    """True: none are collected."""
    allow_list: list[str] | None = None
    """Metric names to keep; absent: all."""


class MetricsSettings(WireModel):
    """What the device collects and how long it buffers it while offline."""

    system: SystemMetricsSettings = Field(default_factory=SystemMetricsSettings)
    """The device's own metrics."""
    retention_max_mib: int = 200
    """The on-disk telemetry buffer's size limit; the oldest records go first."""
    retention_max_hours: int = 168
    """How long a record may wait in the buffer."""


class LogCollectionSettings(WireModel):
    """Where workload logs go (upstream Flotta's ``logCollection`` entries)."""

    kind: str = "syslog"
    """The upstream kind."""
    buffer_size_kib: int = 12
    """The device's buffer for this target, KiB."""
    target: dict[str, str] = Field(default_factory=dict)
    """The data of the ConfigMap that ``syslogConfig`` names (upstream: ``Address``,
    ``Protocol``)."""


class DesiredConfiguration(WireModel):
    """The device's configuration: its EdgeDevice's, else its EdgeDeviceSet's, else defaults."""

    heartbeat: HeartbeatConfiguration = Field(default_factory=HeartbeatConfiguration)
    """``periodSeconds``: how often to send the status report; ``hardwareProfile``: whether
    and how to include the hardware inventory."""
    os: OsInformation = Field(default_factory=OsInformation)
    """The OS image to run (``commitID``, ``hostedObjectsURL``, ``automaticallyUpgrade``)."""
    mounts: list[Mount] = Field(default_factory=list)
    """Host mounts, as upstream Flotta's ``storage.mounts``."""
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    """What to collect and buffer."""
    log_collection: dict[str, LogCollectionSettings] = Field(default_factory=dict)
    """Log targets by name."""


class DesiredState(Payload):
    """Everything the device should be and run (retained, QoS 1): the device applies it when
    ``version`` differs from what it applied, and reports the version it runs."""

    KIND: ClassVar[str] = "desired"
    MAX_BYTES: ClassVar[int] = 512 * KiB

    device_id: Name
    """The device it is for (the id in the topic)."""
    namespace: ShortText
    """The EdgeDevice's namespace."""
    version: Annotated[str, Field(max_length=80)] = ""
    """A content hash of the rest: equal versions mean equal contents."""
    deregister: bool = False
    """True: the EdgeDevice was deleted; the device stops its workloads and forgets its
    identity."""
    configuration: DesiredConfiguration = Field(default_factory=DesiredConfiguration)
    """The device's configuration."""
    workloads: Annotated[list[DesiredWorkload], Field(max_length=256)] = Field(default_factory=list)
    """Every workload the device should run; a workload not listed is removed."""
    secrets: list[SealedSecret] = Field(default_factory=list)
    """The Secrets the workloads reference, sealed for the device's key."""

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
    ephemeral_public_key: Annotated[str, Field(max_length=256)]
    nonce: Annotated[str, Field(max_length=64)]
    ciphertext: Annotated[str, Field(max_length=256 * KiB)]


class SealedSecret(WireModel):
    """A Kubernetes Secret the workloads reference; ``data`` is the sealed JSON of its data map."""

    name: Name
    data: SealedData


class ConfigMapData(WireModel):
    name: Name
    data: dict[str, str] = Field(default_factory=dict)


class WorkloadMetricsSettings(WireModel):
    path: str = "/"
    port: int = 0
    interval: int = 60
    allow_list: list[str] | None = None
    containers: dict[str, dict[str, Any]] = Field(default_factory=dict)


class DesiredWorkload(WireModel):
    name: Name
    namespace: ShortText
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    pod_spec: dict[str, Any]
    configmaps: list[ConfigMapData] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    image_registry_auth: SealedData | None = None
    metrics: WorkloadMetricsSettings | None = None
    log_collection: ShortText = ""
    data: dict[str, Any] | None = None


class SystemMetricsSettings(WireModel):
    interval: int = 60
    disabled: bool = False
    allow_list: list[str] | None = None


class MetricsSettings(WireModel):
    system: SystemMetricsSettings = Field(default_factory=SystemMetricsSettings)
    retention_max_mib: int = 200
    retention_max_hours: int = 168


class LogCollectionSettings(WireModel):
    kind: str = "syslog"
    buffer_size_kib: int = 12
    target: dict[str, str] = Field(default_factory=dict)


class DesiredConfiguration(WireModel):
    heartbeat: HeartbeatConfiguration = Field(default_factory=HeartbeatConfiguration)
    os: OsInformation = Field(default_factory=OsInformation)
    mounts: list[Mount] = Field(default_factory=list)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log_collection: dict[str, LogCollectionSettings] = Field(default_factory=dict)


class DesiredState(Payload):
    KIND: ClassVar[str] = "desired"
    MAX_BYTES: ClassVar[int] = 512 * KiB

    device_id: Name
    namespace: ShortText
    version: Annotated[str, Field(max_length=80)] = ""
    deregister: bool = False
    configuration: DesiredConfiguration = Field(default_factory=DesiredConfiguration)
    workloads: Annotated[list[DesiredWorkload], Field(max_length=256)] = Field(default_factory=list)
    secrets: list[SealedSecret] = Field(default_factory=list)

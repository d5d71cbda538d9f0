"""``flotta/devices/{id}/desired`` as the device reads it (:mod:`flotta.schemas.wire.desired`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from flotta.agent.contract.base import ApiStruct, KiB, Name, Payload, ShortText, WireStruct

SealingAlgorithm = Literal["ECDH-P256+HKDF-SHA256+A256GCM"]
SEALING_ALGORITHM: SealingAlgorithm = "ECDH-P256+HKDF-SHA256+A256GCM"


class HardwareProfile(ApiStruct, frozen=True, kw_only=True):
    include: bool = True
    scope: Literal["full", "delta"] = "full"


class HeartbeatConfiguration(ApiStruct, frozen=True, kw_only=True):
    period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    hardware_profile: HardwareProfile | None = None


class OsInformation(ApiStruct, frozen=True, kw_only=True):
    automatically_upgrade: bool = False
    commit_id: Annotated[str, msgspec.Meta(max_length=128)] = msgspec.field(
        default="", name="commitID"
    )
    hosted_objects_url: Annotated[str, msgspec.Meta(max_length=2048)] = msgspec.field(
        default="", name="hostedObjectsURL"
    )


class Mount(ApiStruct, frozen=True, kw_only=True):
    device: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    folder: Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^/")]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    options: Annotated[str, msgspec.Meta(max_length=4096)] = ""


class SealedData(WireStruct, frozen=True, kw_only=True):
    """Bytes encrypted for this device (opened by :mod:`flotta.agent.keychild`)."""

    algorithm: SealingAlgorithm = SEALING_ALGORITHM
    ephemeral_public_key: Annotated[str, msgspec.Meta(max_length=256)]
    nonce: Annotated[str, msgspec.Meta(max_length=64)]
    ciphertext: Annotated[str, msgspec.Meta(max_length=256 * KiB)]


class SealedSecret(WireStruct, frozen=True, kw_only=True):
    name: Name
    data: SealedData


class ConfigMapData(WireStruct, frozen=True, kw_only=True):
    name: Name
    data: dict[str, str] = msgspec.field(default_factory=dict)


class WorkloadMetricsSettings(WireStruct, frozen=True, kw_only=True):
    path: str = "/"
    port: int = 0
    interval: int = 60
    allow_list: list[str] | None = None
    containers: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


class DesiredWorkload(WireStruct, frozen=True, kw_only=True):
    name: Name
    namespace: ShortText
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    pod_spec: dict[str, Any]
    configmaps: list[ConfigMapData] = msgspec.field(default_factory=list)
    secrets: list[str] = msgspec.field(default_factory=list)
    image_registry_auth: SealedData | None = None
    metrics: WorkloadMetricsSettings | None = None
    log_collection: ShortText = ""
    data: dict[str, Any] | None = None


class SystemMetricsSettings(WireStruct, frozen=True, kw_only=True):
    interval: int = 60
    disabled: bool = False
    allow_list: list[str] | None = None


class MetricsSettings(WireStruct, frozen=True, kw_only=True):
    system: SystemMetricsSettings = msgspec.field(default_factory=SystemMetricsSettings)
    retention_max_mib: int = 200
    retention_max_hours: int = 168


class LogCollectionSettings(WireStruct, frozen=True, kw_only=True):
    kind: str = "syslog"
    buffer_size_kib: int = 12
    target: dict[str, str] = msgspec.field(default_factory=dict)


class DesiredConfiguration(WireStruct, frozen=True, kw_only=True):
    heartbeat: HeartbeatConfiguration = msgspec.field(default_factory=HeartbeatConfiguration)
    os: OsInformation = msgspec.field(default_factory=OsInformation)
    mounts: list[Mount] = msgspec.field(default_factory=list)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    log_collection: dict[str, LogCollectionSettings] = msgspec.field(default_factory=dict)


class DesiredState(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "desired"
    MAX_BYTES: ClassVar[int] = 512 * KiB

    device_id: Name
    namespace: ShortText
    version: Annotated[str, msgspec.Meta(max_length=80)] = ""
    deregister: bool = False
    configuration: DesiredConfiguration = msgspec.field(default_factory=DesiredConfiguration)
    workloads: Annotated[list[DesiredWorkload], msgspec.Meta(max_length=256)] = msgspec.field(
        default_factory=list
    )
    secrets: list[SealedSecret] = msgspec.field(default_factory=list)

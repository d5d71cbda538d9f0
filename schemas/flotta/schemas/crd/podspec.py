"""The part of a core PodSpec that a device can run with ``podman kube play``.

Fields that Flotta reads are typed; everything else a Pod allows is kept as given
(``x-kubernetes-preserve-unknown-fields``) so that :mod:`flotta.schemas.workloadcheck` can tell
the admin exactly which field a device cannot run, instead of the API pruning it silently.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from flotta.schemas.base import ApiModel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


class OpenModel(ApiModel):
    model_config = ConfigDict(extra="allow")


class KeyRef(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    key: Annotated[str, Field(min_length=1, max_length=253)]
    optional: bool = False


class EnvVarSource(OpenModel):
    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None


class EnvVar(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=ENV_NAME)]
    value: str | None = None
    value_from: EnvVarSource | None = None


class SourceRef(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    optional: bool = False


class EnvFromSource(OpenModel):
    prefix: str = ""
    secret_ref: SourceRef | None = None
    config_map_ref: SourceRef | None = None


class ContainerPort(OpenModel):
    container_port: Annotated[int, Field(ge=1, le=65535)]
    host_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    name: Annotated[str, Field(max_length=15)] | None = None
    host_ip: str | None = None


class VolumeMount(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    mount_path: Annotated[str, Field(min_length=1, max_length=4096)]
    read_only: bool = False
    sub_path: str | None = None


class Container(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    image: Annotated[str, Field(min_length=1, max_length=1024)]
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    env_from: list[EnvFromSource] | None = None
    ports: list[ContainerPort] | None = None
    volume_mounts: list[VolumeMount] | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None


class HostPathVolumeSource(OpenModel):
    path: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]
    type: str | None = None


class ConfigMapVolumeSource(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    optional: bool = False


class SecretVolumeSource(OpenModel):
    secret_name: Annotated[str, Field(min_length=1, max_length=253)]
    optional: bool = False


class Volume(OpenModel):
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    host_path: HostPathVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None


class PodSpec(OpenModel):
    containers: Annotated[list[Container], Field(min_length=1, max_length=64)]
    init_containers: list[Container] | None = None
    volumes: list[Volume] | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    host_network: bool | None = None
    hostname: str | None = None

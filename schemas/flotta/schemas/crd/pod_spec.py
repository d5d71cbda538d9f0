"""The part of a core PodSpec that a device can run with ``podman kube play``.

Fields that Flotta reads are typed; everything else a Pod allows is kept as given
(``x-kubernetes-preserve-unknown-fields``) so that :mod:`flotta.schemas.workload_check` can tell
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
    """One key of a Secret or ConfigMap in the workload's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The Secret's or ConfigMap's name."""
    key: Annotated[str, Field(min_length=1, max_length=253)]
    """The key whose value the variable takes."""
    optional: bool = False
    """True: a missing object leaves the variable out; false: a missing object keeps the
    workload from being published."""


class EnvVarSource(OpenModel):
    """Where a variable's value comes from; fieldRef and resourceFieldRef are rejected."""

    secret_key_ref: KeyRef | None = None
    """A key of a Secret; the Secret travels sealed to the device and becomes a Podman
    secret."""
    config_map_key_ref: KeyRef | None = None
    """A key of a ConfigMap; the ConfigMap travels with the workload to the device."""


class EnvVar(OpenModel):
    """One environment variable of a container."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=ENV_NAME)]
    """The variable's name; variables the device injects (such as DEVICE_ID) replace one of
    the same name."""
    value: str | None = None
    """The variable's value, as given."""
    value_from: EnvVarSource | None = None
    """Take the value from a Secret or ConfigMap key instead."""


class SourceRef(OpenModel):
    """A Secret or ConfigMap in the workload's namespace, by name."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The object's name."""
    optional: bool = False
    """True: a missing object is skipped; false: it keeps the workload from being
    published."""


class EnvFromSource(OpenModel):
    """Every key of a Secret or ConfigMap as an environment variable."""

    prefix: str = ""
    """Put in front of every variable name taken from the object."""
    secret_ref: SourceRef | None = None
    """A Secret whose keys become variables; it travels sealed to the device."""
    config_map_ref: SourceRef | None = None
    """A ConfigMap whose keys become variables; it travels with the workload."""


class ContainerPort(OpenModel):
    """A port the container listens on."""

    container_port: Annotated[int, Field(ge=1, le=65535)]
    """The port inside the pod."""
    host_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """The device's port to publish it on; two containers may not use the same host port
    and protocol. Unset: not published, reachable only at the pod's address."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """TCP (default), UDP or SCTP."""
    name: Annotated[str, Field(max_length=15)] | None = None
    """A name for the port."""
    host_ip: str | None = None
    """The device address to publish hostPort on; unset: every address."""


class VolumeMount(OpenModel):
    """A volume of the pod mounted into the container."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    """The name of a volume in the pod's volumes."""
    mount_path: Annotated[str, Field(min_length=1, max_length=4096)]
    """Where in the container to mount it."""
    read_only: bool = False
    """Mount it read-only (configMap and secret volumes always are)."""
    sub_path: str | None = None
    """Mount only this path inside the volume."""


class Container(OpenModel):
    """A container of the pod. Lifecycle hooks, volumeDevices and gRPC probes are rejected;
    the device's health gate runs the other probes; other core Container fields are passed
    to Podman as given."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    """The container's name, unique in the pod."""
    image: Annotated[str, Field(min_length=1, max_length=1024)]
    """The container image the device pulls and runs."""
    command: list[str] | None = None
    """The entrypoint; unset: the image's."""
    args: list[str] | None = None
    """Arguments to the entrypoint; unset: the image's."""
    working_dir: str | None = None
    """The container's working directory; unset: the image's."""
    env: list[EnvVar] | None = None
    """Environment variables; the device adds its own (such as DEVICE_ID)."""
    env_from: list[EnvFromSource] | None = None
    """Secrets and ConfigMaps whose keys all become environment variables."""
    ports: list[ContainerPort] | None = None
    """Ports the container listens on; only those with a hostPort are published on the
    device."""
    volume_mounts: list[VolumeMount] | None = None
    """Volumes of the pod to mount into the container."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the device pulls the image: Always, IfNotPresent or Never."""


class HostPathVolumeSource(OpenModel):
    """A file or directory of the device."""

    path: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]
    """The absolute path on the device."""
    type: str | None = None
    """What must be at the path, for example Directory or DirectoryOrCreate."""


class ConfigMapVolumeSource(OpenModel):
    """A ConfigMap's keys as files; the device writes them to a read-only directory."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The ConfigMap's name, in the workload's namespace."""
    optional: bool = False
    """True: a missing ConfigMap gives an empty volume; false: it keeps the workload from
    being published."""


class SecretVolumeSource(OpenModel):
    """A Secret's keys as files; the Secret travels sealed and the device writes it to a
    read-only directory."""

    secret_name: Annotated[str, Field(min_length=1, max_length=253)]
    """The Secret's name, in the workload's namespace."""
    optional: bool = False
    """True: a missing Secret gives an empty volume; false: it keeps the workload from being
    published."""


class Volume(OpenModel):
    """A volume of the pod; only hostPath, configMap and secret volumes run on a device."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    """The volume's name, which volumeMounts refer to."""
    host_path: HostPathVolumeSource | None = None
    """A file or directory of the device."""
    config_map: ConfigMapVolumeSource | None = None
    """A ConfigMap's keys as read-only files."""
    secret: SecretVolumeSource | None = None
    """A Secret's keys as read-only files."""


class PodSpec(OpenModel):
    """A core Kubernetes PodSpec, run on the device with podman kube play. Fields a device
    cannot run are reported in the workload's Valid condition."""

    containers: Annotated[list[Container], Field(min_length=1, max_length=64)]
    """The pod's containers (at least one)."""
    init_containers: list[Container] | None = None
    """Containers that run to completion, in order, before the others start."""
    volumes: list[Volume] | None = None
    """Volumes the containers can mount: hostPath, configMap or secret."""
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    """When the device restarts the pod's containers: Always (default), OnFailure or
    Never."""
    host_network: bool | None = None
    """Run the pod in the device's network namespace instead of a pod network."""
    hostname: str | None = None
    """The pod's host name; unset: the pod's name."""

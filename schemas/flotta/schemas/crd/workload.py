"""EdgeWorkload: a pod that runs on every device it selects."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, LabelSelector, Resource
from flotta.schemas.crd.config import NameRef
from flotta.schemas.crd.pod_spec import PodSpec
from flotta.schemas.crd.rollout import RolloutPolicy, RolloutStatus


class Pod(ApiModel):
    """The pod to run; only its spec is read."""

    spec: PodSpec
    """A core Kubernetes PodSpec, run on each device with podman kube play."""


class DataPath(ApiModel):
    """A pair of paths that upstream Flotta synced between the device and S3 storage."""

    source: Annotated[str, Field(min_length=1, max_length=4096)]
    """Upstream: the path to copy from. Passed to the device; not acted on."""
    target: Annotated[str, Field(min_length=1, max_length=4096)]
    """Upstream: the path to copy to. Passed to the device; not acted on."""


class DataConfiguration(ApiModel):
    """Upstream Flotta's data sync between the workload's /export folder and S3. Accepted for
    compatibility and passed to the device, which does no data sync; the EdgeWorkload's
    UnsupportedFields condition names the lists that are set."""

    paths: list[DataPath] | None = None
    """Upstream: folders to upload from the device. Not acted on."""
    ingress: list[DataPath] | None = None
    """Upstream: folders to download to the device. Not acted on."""
    egress: list[DataPath] | None = None
    """Upstream: folders to upload from the device. Not acted on."""


class ImageRegistries(ApiModel):
    """Credentials for pulling the workload's images."""

    secret_ref: NameRef | None = None
    """A Secret in the workload's namespace whose .dockerconfigjson key holds registry
    credentials; it travels sealed to the device and is used for image pulls. The workload
    is not published while the Secret is missing or invalid."""


class ContainerMetrics(ApiModel):
    """Metrics scraping settings for one container, instead of the workload's."""

    path: str = "/"
    """The HTTP path of the container's metrics endpoint (default /)."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """The container's metrics port; unset: the workload's port."""
    disabled: bool = False
    """True: this container is not scraped."""


class WorkloadMetrics(ApiModel):
    """Prometheus metrics that the device scrapes from the workload and sends over MQTT,
    each sample labelled with its device, workload and container."""

    path: Annotated[str, Field(max_length=2048)] = "/"
    """The HTTP path of the metrics endpoint (default /)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    """The port of the metrics endpoint at the pod's address, which the device reaches from
    inside the pod's network (no host port needed); 0: only the ports given in containers
    are scraped."""
    interval: Annotated[int, Field(ge=1, le=86400)] = 60
    """Seconds between scrapes (default 60)."""
    allow_list: NameRef | None = None
    """A ConfigMap whose key metrics_list.yaml lists the metric names to keep (under
    `names:`); unset, missing or unreadable: every metric is kept."""
    containers: dict[str, ContainerMetrics] | None = None
    """Per-container settings by container name: a container named here is scraped at its
    own port and path (or not at all when disabled), every other container at port and
    path. Containers at the same port and path are scraped once."""


class EdgeWorkloadSpec(ApiModel):
    """Which devices run the workload, the pod they run, and its metrics, logs and image
    credentials. Set device or deviceSelector."""

    device_selector: LabelSelector | None = None
    """Run on every device of the workload's namespace whose labels match; an empty
    selector selects every device of the namespace. Ignored when device is set."""
    device: Annotated[str, Field(max_length=63)] | None = None
    """Run on this one device (an EdgeDevice name in the workload's namespace); wins over
    deviceSelector."""
    type: Literal["pod"] = "pod"
    """The kind of workload; pod is the only one."""
    pod: Pod
    """The pod to run on each selected device."""
    data: DataConfiguration | None = None
    """Upstream's data sync paths. Accepted for compatibility and passed to the device,
    which does not act on them (named in the UnsupportedFields condition)."""
    image_registries: ImageRegistries | None = None
    """Credentials for pulling the workload's images from private registries."""
    metrics: WorkloadMetrics | None = None
    """Where the device scrapes the workload's Prometheus metrics; unset: not scraped."""
    log_collection: Annotated[str, Field(max_length=253)] | None = None
    """The name of a log destination in the device's logCollection; set: the device collects
    the workload's container logs and sends them over MQTT. Unset: logs are not collected."""
    rollout_policy: RolloutPolicy | None = None
    """How a change of the workload reaches the selected devices: in batches with a success
    threshold, a disruption budget, pause and approval (docs/rollouts.md). Unset: every device
    at once."""


class EdgeWorkloadStatus(ApiModel):
    """How the rollout stands across the targeted devices (written by the operator)."""

    targeted_devices: int | None = None
    """How many devices the workload selects."""
    applied_devices: int | None = None
    """How many of them applied the desired state that includes the workload's current
    version."""
    running_devices: int | None = None
    """How many of them report the workload Running."""
    failed_devices: int | None = None
    """How many of them report the workload Failed."""
    conditions: list[Condition] | None = None
    """Valid (whether the workload could be rendered for devices; False lists the
    problems), Deployed (whether every targeted device applied it) and, while the workload
    sets upstream fields no device acts on, UnsupportedFields naming them."""
    observed_generation: int | None = None
    """The metadata.generation the counts and conditions were computed for."""
    rollout: RolloutStatus | None = None
    """Where the rollout of the latest revision stands (with a rolloutPolicy)."""


class EdgeWorkload(Resource):
    """A pod to run on one device or on every device a label selector picks."""

    KIND: ClassVar[str] = "EdgeWorkload"
    PLURAL: ClassVar[str] = "edgeworkloads"

    kind: str = "EdgeWorkload"
    spec: EdgeWorkloadSpec
    """Which devices run the pod, the pod itself, and its metrics, logs and image
    credentials."""
    status: EdgeWorkloadStatus | None = None
    """How many targeted devices applied, run or failed the workload, and its conditions."""

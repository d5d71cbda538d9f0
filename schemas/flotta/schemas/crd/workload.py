"""EdgeWorkload: a pod that runs on every device it selects."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, LabelSelector, Resource
from flotta.schemas.crd.config import NameRef
from flotta.schemas.crd.podspec import PodSpec


class Pod(ApiModel):
    spec: PodSpec


class DataPath(ApiModel):
    source: Annotated[str, Field(min_length=1, max_length=4096)]
    target: Annotated[str, Field(min_length=1, max_length=4096)]


class DataConfiguration(ApiModel):
    paths: list[DataPath] | None = None
    ingress: list[DataPath] | None = None
    egress: list[DataPath] | None = None


class ImageRegistries(ApiModel):
    secret_ref: NameRef | None = None


class ContainerMetrics(ApiModel):
    path: str = "/"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    disabled: bool = False


class WorkloadMetrics(ApiModel):
    path: Annotated[str, Field(max_length=2048)] = "/"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    interval: Annotated[int, Field(ge=1, le=86400)] = 60
    allow_list: NameRef | None = None
    containers: dict[str, ContainerMetrics] | None = None


class EdgeWorkloadSpec(ApiModel):
    device_selector: LabelSelector | None = None
    device: Annotated[str, Field(max_length=63)] | None = None
    type: Literal["pod"] = "pod"
    pod: Pod
    data: DataConfiguration | None = None
    image_registries: ImageRegistries | None = None
    metrics: WorkloadMetrics | None = None
    log_collection: Annotated[str, Field(max_length=253)] | None = None


class EdgeWorkloadStatus(ApiModel):
    targeted_devices: int | None = None
    applied_devices: int | None = None
    running_devices: int | None = None
    failed_devices: int | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class EdgeWorkload(Resource):
    """A pod to run on one device or on every device a label selector picks."""

    KIND: ClassVar[str] = "EdgeWorkload"
    PLURAL: ClassVar[str] = "edgeworkloads"

    kind: str = "EdgeWorkload"
    spec: EdgeWorkloadSpec
    status: EdgeWorkloadStatus | None = None

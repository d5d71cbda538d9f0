"""EdgeDeviceSet: configuration shared by the devices labelled ``flotta/member-of: <set>``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, Resource
from flotta.schemas.crd.config import DeviceConfiguration


class EdgeDeviceSetSpec(DeviceConfiguration):
    pass


class EdgeDeviceSetStatus(ApiModel):
    members: int | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class EdgeDeviceSet(Resource):
    """Configuration shared by every device labelled flotta/member-of: <name>."""

    KIND: ClassVar[str] = "EdgeDeviceSet"
    PLURAL: ClassVar[str] = "edgedevicesets"

    kind: str = "EdgeDeviceSet"
    spec: EdgeDeviceSetSpec = Field(default_factory=EdgeDeviceSetSpec)
    status: EdgeDeviceSetStatus | None = None

"""EdgeDeviceSet: configuration shared by the devices labelled ``flotta/member-of: <set>``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, Resource
from flotta.schemas.crd.config import DeviceConfiguration
from flotta.schemas.crd.rollout import RolloutPolicy, RolloutStatus


class EdgeDeviceSetSpec(DeviceConfiguration):
    """The configuration of every member device; each section replaces the device's own as
    a whole, and a section left unset means defaults."""

    rollout_policy: RolloutPolicy | None = None
    """How a change of the set's configuration (OS commit included) reaches the members: in
    batches with a success threshold and a disruption budget (docs/rollouts.md). Unset: every
    member at once."""


class EdgeDeviceSetStatus(ApiModel):
    """The set as the operator sees it."""

    members: int | None = None
    """How many EdgeDevices of the namespace carry the label flotta/member-of: <set>
    (written by the operator)."""
    conditions: list[Condition] | None = None
    """Conditions other controllers may set; the operator writes none."""
    observed_generation: int | None = None
    """Accepted for symmetry with the other kinds; the operator does not write it."""
    rollout: RolloutStatus | None = None
    """Where the rollout of the set's latest configuration stands (with a rolloutPolicy)."""


class EdgeDeviceSet(Resource):
    """Configuration shared by every device labelled flotta/member-of: <name>."""

    KIND: ClassVar[str] = "EdgeDeviceSet"
    PLURAL: ClassVar[str] = "edgedevicesets"

    kind: str = "EdgeDeviceSet"
    spec: EdgeDeviceSetSpec = Field(default_factory=EdgeDeviceSetSpec)
    """The configuration shared by the member devices (the same sections as an EdgeDevice)."""
    status: EdgeDeviceSetStatus | None = None
    """How many devices belong to the set."""

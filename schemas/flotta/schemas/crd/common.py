"""Types shared by every Flotta kind: metadata, conditions, label selectors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel

GROUP = "management.project-flotta.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MEMBER_OF_LABEL = "flotta/member-of"
WORKLOAD_LABEL_PREFIX = "workload/"
DEVICE_FINALIZER = "flotta.io/device-cleanup"

NonEmptyStr = Annotated[str, Field(min_length=1)]


def kube_time(value: datetime) -> str:
    """RFC 3339 in UTC with whole seconds and ``Z``, as Kubernetes writes times (a time
    without a zone is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class ObjectMeta(ApiModel):
    """The part of Kubernetes object metadata that Flotta reads."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    deletion_timestamp: datetime | None = None
    creation_timestamp: datetime | None = None


class Condition(ApiModel):
    """A status condition in Kubernetes convention (metav1.Condition)."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    """What the condition is about, in CamelCase (for example Ready or Online)."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds: True, False or Unknown."""
    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    """A CamelCase word for why the condition has its status, for programs to match on."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """Details for people: why the condition has its status."""
    last_transition_time: datetime
    """When the status last changed (a message-only change keeps the time)."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation of the object that the condition was computed from."""


class LabelSelectorRequirement(ApiModel):
    """One test on a device label: a key, an operator and, for In and NotIn, values."""

    key: NonEmptyStr
    """The label key the test reads."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label is tested: In and NotIn compare its value with values, Exists and
    DoesNotExist only look at whether the key is there."""
    values: list[str] = Field(default_factory=list)
    """The values for In and NotIn (at least one); empty for Exists and DoesNotExist."""


class LabelSelector(ApiModel):
    """metav1.LabelSelector; an empty selector selects every device of the namespace."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels a device must carry with exactly these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)
    """Further tests on device labels; a device must pass all of them and matchLabels."""


class Resource(ApiModel):
    """Common shape of a Flotta custom resource."""

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""

    api_version: str = API_VERSION
    """The versioned schema of the object: management.project-flotta.io/v1alpha1."""
    kind: str = ""
    """The kind of the object."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard Kubernetes object metadata."""

    @classmethod
    def from_api(cls, obj: dict[str, Any]) -> Any:
        return cls.model_validate(obj)


# Bridge replicas show they are alive with a coordination.k8s.io Lease each, carrying this
# label, in the namespace the operator's own lease is in; with none renewed for a while the
# operator marks Online devices Unknown (nobody is listening to them).
BRIDGE_PRESENCE_LABEL = "flotta.io/bridge-presence"

"""EdgeDeviceSignedRequest: a device's enrolment, approved by hand or by policy."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, Resource
from flotta.schemas.crd.hardware import StoredHardware

RequestPhase = Literal["Pending", "Approved", "Declined", "Issued", "Failed"]


class Features(ApiModel):
    """What the device told about itself when it asked to enrol."""

    model_name: Annotated[str, Field(max_length=253)] = ""
    """The device's product name, as the device reports it."""
    hardware: StoredHardware | None = None
    """The device's hardware inventory at enrolment; the operator turns part of it into
    device.* labels on the EdgeDevice it creates."""


class EdgeDeviceSignedRequestSpec(ApiModel):
    """The device's request to enrol, and the decision on it."""

    target_namespace: Annotated[str, Field(min_length=1, max_length=63)]
    """The namespace the device asks to join; its EdgeDevice is created there."""
    target_set: Annotated[str, Field(max_length=253)] = ""
    """The EdgeDeviceSet the device asks to join; the EdgeDevice gets the label
    flotta/member-of: <set>. An auto-approval policy may approve per set."""
    approved: bool = False
    """Set to true to approve the enrolment: the operator then creates the EdgeDevice and
    signs the device's certificate. The auto-approval policy may set it at creation."""
    features: Features | None = None
    """The device's product name and hardware inventory, as it reported them."""
    csr: Annotated[str, Field(max_length=16384)] = ""
    """The device's certificate signing request (PEM; public), signed once the request is
    approved. An addition to upstream Flotta."""


class EdgeDeviceSignedRequestStatus(ApiModel):
    """Where the enrolment stands (written by the operator)."""

    phase: RequestPhase | None = None
    """Pending (waiting for approval), Declined (the request carries the annotation
    flotta.io/declined), Issued (approved: the EdgeDevice exists and the device got its
    certificate) or Failed (for example an invalid CSR). Approved is accepted but not
    written."""
    conditions: list[Condition] | None = None
    """The Approved condition, with the reason and message of the current phase."""
    certificate_serial: str = ""
    """The serial number of the certificate issued to the device."""
    observed_generation: int | None = None
    """Accepted for symmetry with the other kinds; the operator does not write it."""


class EdgeDeviceSignedRequest(Resource):
    """A device's enrolment; approving it creates the EdgeDevice and signs its certificate."""

    KIND: ClassVar[str] = "EdgeDeviceSignedRequest"
    PLURAL: ClassVar[str] = "edgedevicesignedrequests"

    kind: str = "EdgeDeviceSignedRequest"
    spec: EdgeDeviceSignedRequestSpec
    """The device's request (namespace, set, what it is) and whether it is approved."""
    status: EdgeDeviceSignedRequestStatus | None = None
    """Where the enrolment stands."""

"""EdgeDeviceSignedRequest: a device's enrolment, approved by hand or by policy."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, Resource
from flotta.schemas.crd.hardware import Hardware

RequestPhase = Literal["Pending", "Approved", "Declined", "Issued", "Failed"]


class Features(ApiModel):
    model_name: Annotated[str, Field(max_length=253)] = ""
    hardware: Hardware | None = None


class EdgeDeviceSignedRequestSpec(ApiModel):
    target_namespace: Annotated[str, Field(min_length=1, max_length=63)]
    target_set: Annotated[str, Field(max_length=253)] = ""
    approved: bool = False
    features: Features | None = None
    # Flotta-python addition: the device's CSR (public), signed once the request is approved.
    csr: Annotated[str, Field(max_length=16384)] = ""


class EdgeDeviceSignedRequestStatus(ApiModel):
    phase: RequestPhase | None = None
    conditions: list[Condition] | None = None
    certificate_serial: str = ""
    observed_generation: int | None = None


class EdgeDeviceSignedRequest(Resource):
    """A device's enrolment; approving it creates the EdgeDevice and signs its certificate."""

    KIND: ClassVar[str] = "EdgeDeviceSignedRequest"
    PLURAL: ClassVar[str] = "edgedevicesignedrequests"

    kind: str = "EdgeDeviceSignedRequest"
    spec: EdgeDeviceSignedRequestSpec
    status: EdgeDeviceSignedRequestStatus | None = None

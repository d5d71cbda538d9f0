"""Connection state, events, enrolment and renewal payloads (see :mod:`flotta.schemas.wire`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.agent.contract.base import KiB, NonNegative, Payload, Pem, ShortText, Text, Time
from flotta.agent.contract.hardware import Hardware
from flotta.agent.contract.telemetry import StreamId

RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ConnectionState(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "connection"
    MAX_BYTES: ClassVar[int] = 2 * KiB

    state: Literal["online", "offline"]
    time: Time
    applied_version: ShortText = ""
    agent_version: ShortText = ""
    reason: ShortText = ""


class DeviceEvent(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "events"
    MAX_BYTES: ClassVar[int] = 8 * KiB

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    time: Time
    type: Literal["Normal", "Warning"] = "Normal"
    reason: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    ]
    message: Text = ""
    workload: ShortText = ""
    stream: StreamId | None = None  # with sequence: kept until the bridge's receipt
    sequence: NonNegative | None = None


class EnrolmentRequest(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "enrolment request"
    MAX_BYTES: ClassVar[int] = 128 * KiB

    target_namespace: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    target_set: ShortText = ""
    model_name: ShortText = ""
    hardware: Hardware | None = None
    csr: Pem


KeyFingerprint = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^([0-9a-f]{64})?$")]


class EnrolmentAnswer(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "enrolment answer"
    MAX_BYTES: ClassVar[int] = 32 * KiB

    status: Literal["pending", "declined", "issued", "refused"]
    message: Text = ""
    namespace: ShortText = ""
    certificate: Pem = ""
    ca_certificate: Pem = ""
    public_key_sha256: KeyFingerprint = ""


class RenewalRequest(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "renewal request"
    MAX_BYTES: ClassVar[int] = 16 * KiB

    request_id: RequestId
    csr: Pem


class CertificateAnswer(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "certificate"
    MAX_BYTES: ClassVar[int] = 32 * KiB

    request_id: RequestId
    status: Literal["issued", "refused"]
    message: Text = ""
    certificate: Pem = ""
    ca_certificate: Pem = ""

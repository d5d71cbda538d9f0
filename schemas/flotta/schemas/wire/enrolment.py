"""Enrolment (``flotta/enrol/{id}/request`` and ``.../answer``) and certificate renewal
(``flotta/devices/{id}/csr`` and ``.../certificate``). The device's key never leaves it: it
sends a CSR and gets the certificate back."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.crd.hardware import Hardware
from flotta.schemas.wire.common import KiB, Payload, Pem, ShortText, Text

KeyFingerprint = Annotated[str, Field(max_length=64, pattern=r"^([0-9a-f]{64})?$")]


class EnrolmentRequest(Payload):
    KIND: ClassVar[str] = "enrolment request"
    MAX_BYTES: ClassVar[int] = 128 * KiB

    target_namespace: Annotated[str, Field(min_length=1, max_length=63)]
    target_set: ShortText = ""
    model_name: ShortText = ""
    hardware: Hardware | None = None
    csr: Pem


class EnrolmentAnswer(Payload):
    KIND: ClassVar[str] = "enrolment answer"
    MAX_BYTES: ClassVar[int] = 32 * KiB

    status: Literal["pending", "declined", "issued", "refused"]
    message: Text = ""
    namespace: ShortText = ""
    certificate: Pem = ""
    ca_certificate: Pem = ""
    # The request this answers: SHA-256 of its key's DER SubjectPublicKeyInfo (v1 addition).
    # Another holder of the bootstrap certificate can send a request under the same id; a
    # device acts on a refusal only when it names its own key.
    public_key_sha256: KeyFingerprint = ""


class RenewalRequest(Payload):
    KIND: ClassVar[str] = "renewal request"
    MAX_BYTES: ClassVar[int] = 16 * KiB

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    csr: Pem


class CertificateAnswer(Payload):
    KIND: ClassVar[str] = "certificate"
    MAX_BYTES: ClassVar[int] = 32 * KiB

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    status: Literal["issued", "refused"]
    message: Text = ""
    certificate: Pem = ""
    ca_certificate: Pem = ""

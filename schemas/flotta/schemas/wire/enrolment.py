"""Enrolment (``flotta/enrol/{id}/request`` and ``.../answer``) and certificate renewal
(``flotta/devices/{id}/csr`` and ``.../certificate``). The device's key never leaves it: it
sends a CSR and gets the certificate back."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.schemas.wire.common import KiB, Payload, Pem, ShortText, Text
from flotta.schemas.wire.hardware import Hardware

KeyFingerprint = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^([0-9a-f]{64})?$")]
EnrolmentStatus = Literal["pending", "declined", "issued", "refused"]


class EnrolmentRequest(Payload, frozen=True, kw_only=True):
    """A device asks to join the fleet under the id in its topic (QoS 1, not retained), after
    subscribing to its answer topic, and again after every reconnect until it has its
    certificate."""

    KIND: ClassVar[str] = "enrolment request"
    MAX_BYTES: ClassVar[int] = 128 * KiB

    target_namespace: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    """The namespace the EdgeDevice should be created in."""
    target_set: ShortText = ""
    """The EdgeDeviceSet the device should join, if any."""
    model_name: ShortText = ""
    """The device's model, free text."""
    hardware: Hardware | None = None
    """Upstream Flotta's hardware inventory, shown on the EdgeDeviceSignedRequest."""
    csr: Pem
    """A PEM PKCS#10 request for the device's key (ECDSA P-256), its CN the device id."""


class EnrolmentAnswer(Payload, frozen=True, kw_only=True):
    """The operator's answer to an enrolment request: retained until the device has its
    certificate, then cleared (an empty retained message)."""

    KIND: ClassVar[str] = "enrolment answer"
    MAX_BYTES: ClassVar[int] = 32 * KiB

    status: EnrolmentStatus
    """``pending``: waits for approval; ``declined``: an admin said no; ``issued``: the
    certificate is here; ``refused``: the request cannot be served (see ``message``)."""
    message: Text = ""
    """Why, for a person."""
    namespace: ShortText = ""
    """The namespace the device was enrolled in (``issued``)."""
    certificate: Pem = ""
    """The device's certificate, PEM (``issued``)."""
    ca_certificate: Pem = ""
    """The fleet CA, PEM (``issued``): what the device trusts from then on."""
    public_key_sha256: KeyFingerprint = ""
    """The request this answers: the SHA-256 (lowercase hex) of its key's DER
    SubjectPublicKeyInfo. Another holder of the bootstrap certificate can send a request under
    the same id, so a device acts on an answer only when it names its own key."""


class RenewalRequest(Payload, frozen=True, kw_only=True):
    """The device asks for a new certificate before its own expires (QoS 1)."""

    KIND: ClassVar[str] = "renewal request"
    MAX_BYTES: ClassVar[int] = 16 * KiB

    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """Chosen by the device; the answer carries it back."""
    csr: Pem
    """A PEM PKCS#10 request for a new key (or the same), its CN the device id."""


class CertificateAnswer(Payload, frozen=True, kw_only=True):
    """The operator's answer to a renewal request (QoS 1, not retained)."""

    KIND: ClassVar[str] = "certificate"
    MAX_BYTES: ClassVar[int] = 32 * KiB

    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The ``requestId`` of the renewal request this answers."""
    status: Literal["issued", "refused"]
    """``issued``: the new certificate is here; ``refused``: see ``message``."""
    message: Text = ""
    """Why a renewal was refused, for a person."""
    certificate: Pem = ""
    """The renewed certificate, PEM."""
    ca_certificate: Pem = ""
    """The fleet CA, PEM."""

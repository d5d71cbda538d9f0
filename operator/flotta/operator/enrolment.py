"""Enrolment decisions: what to do with a bootstrap device's request. Pure.

The EdgeDeviceSignedRequest is named after the device id and holds the device's CSR; the
certificate is signed once the request is approved (by policy or by an admin). A request is
declined by annotating it with ``flotta.io/declined: <reason>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from flotta.operator.errors import EnrolmentError
from flotta.operator.policy import ApprovalPolicy
from flotta.pki.keys import PublicKey
from flotta.schemas.crd.signed_request import EdgeDeviceSignedRequest
from flotta.schemas.wire.enrolment import EnrolmentRequest

DECLINED_ANNOTATION = "flotta.io/declined"


@dataclass(frozen=True, slots=True)
class Create:
    """Create the EdgeDeviceSignedRequest (approved by policy or not)."""

    approved: bool


@dataclass(frozen=True, slots=True)
class Pending:
    pass


@dataclass(frozen=True, slots=True)
class Declined:
    message: str


@dataclass(frozen=True, slots=True)
class Issue:
    """Approved: create the device if needed, sign the CSR, answer with the certificate."""


@dataclass(frozen=True, slots=True)
class Refuse:
    message: str


Decision = Create | Pending | Declined | Issue | Refuse


def load_request_csr(device_id: str, pem: str) -> x509.CertificateSigningRequest:
    """The device's CSR, checked: it parses, its signature holds, its CN (if any) is the id."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise EnrolmentError(f"device {device_id}: the CSR is not a PEM CSR ({exc})") from None
    if not csr.is_signature_valid:
        raise EnrolmentError(f"device {device_id}: the CSR signature is invalid")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names and names[0].value != device_id:
        raise EnrolmentError(f"device {device_id}: the CSR asks for common name {names[0].value!r}")
    return csr


def key_bytes(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def request_state(request: EdgeDeviceSignedRequest) -> Decision:
    """Where an existing request stands."""
    declined = request.metadata.annotations.get(DECLINED_ANNOTATION)
    if declined is not None:
        return Declined(declined or "the enrolment request was declined")
    if request.spec.approved:
        return Issue()
    return Pending()


def decide(
    device_id: str,
    request: EnrolmentRequest,
    csr_key: PublicKey,
    *,
    existing_request: EdgeDeviceSignedRequest | None,
    existing_request_key: PublicKey | None,
    device_namespaces: set[str],
    device_key: PublicKey | None,
    policy: ApprovalPolicy,
) -> Decision:
    """Decide on an enrolment request. Repeating a request with the same key gives the same
    outcome; an id in use by another key is refused."""
    mine = key_bytes(csr_key)
    if device_namespaces:
        if device_key is not None and key_bytes(device_key) == mine:
            if request.target_namespace not in device_namespaces:
                return Refuse(f"device {device_id} is enrolled in another namespace")
            return Issue()
        if (
            existing_request is None
            or existing_request_key is None
            or (key_bytes(existing_request_key) != mine)
        ):
            return Refuse(f"device id {device_id} is already in use by another key")
    if existing_request is not None:
        if existing_request_key is not None and key_bytes(existing_request_key) != mine:
            return Refuse(f"device id {device_id} is already requested by another key")
        if existing_request.spec.target_namespace != request.target_namespace:
            return Refuse(
                f"device {device_id} already asked to enrol in "
                f"{existing_request.spec.target_namespace!r}"
            )
        return request_state(existing_request)
    return Create(approved=policy.approves(request.target_namespace, request.target_set))

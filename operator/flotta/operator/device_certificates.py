"""Device keys, CSRs and certificates as enrolment and renewal see them: the checks that
decide and the texts that tell. Pure (no PKI store, no I/O)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from flotta.operator.enrolment import key_bytes, load_request_csr
from flotta.operator.errors import EnrolmentError
from flotta.pki.errors import PkiError
from flotta.pki.keys import PublicKey, check_public_key
from flotta.schemas.crd.signed_request import EdgeDeviceSignedRequest


def csr_public_key(device_id: str, csr_pem: str) -> PublicKey:
    """The key a device's CSR asks a certificate for, the CSR checked on the way (raises
    EnrolmentError or PkiError)."""
    return check_public_key(load_request_csr(device_id, csr_pem).public_key())


def request_public_key(request: EdgeDeviceSignedRequest | None) -> PublicKey | None:
    """The key of a stored request's CSR; None without a request or a usable CSR."""
    if request is None or not request.spec.csr:
        return None
    try:
        return csr_public_key(request.metadata.name, request.spec.csr)
    except (EnrolmentError, PkiError):
        return None


def same_key(one: PublicKey, other: PublicKey) -> bool:
    return key_bytes(one) == key_bytes(other)


def namespace_conflict(device_id: str, namespace: str, device_namespaces: set[str]) -> str | None:
    """Why ``device_id`` cannot be issued a certificate in ``namespace``, if it is enrolled in
    another one."""
    other = device_namespaces - {namespace}
    if not other:
        return None
    return f"device id {device_id} is already used in namespace {sorted(other)[0]}"


def key_conflict(device_id: str, current: PublicKey | None, key: PublicKey) -> str | None:
    """Why ``key`` cannot have the id's certificate, if the device holds another key."""
    if current is not None and not same_key(current, key):
        return f"device id {device_id} is already in use by another key"
    return None


def renewal_key_refusal(current: PublicKey | None, key: PublicKey) -> str | None:
    """Why a renewal with ``key`` is refused, if the device's current key is another one."""
    if current is None or not same_key(current, key):
        return "a renewal must reuse the device key"
    return None


def worth_giving_again(cert: x509.Certificate, key: PublicKey, now: datetime) -> bool:
    """A repeated request gets the current certificate again when it is for the same key and
    more than half of its validity is left (otherwise a fresh one is signed)."""
    if not same_key(check_public_key(cert.public_key()), key):
        return False
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return not cert.not_valid_after_utc - now < lifetime / 2


def serial_text(cert: x509.Certificate) -> str:
    return f"{cert.serial_number:X}"


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def issued_message(cert: x509.Certificate) -> str:
    return (
        f"certificate {serial_text(cert)} issued, "
        f"valid until {cert.not_valid_after_utc.isoformat()}"
    )

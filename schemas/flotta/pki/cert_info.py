"""Read what a certificate says: identity, device id, namespace, public key, validity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flotta.pki.errors import CertificateError, CsrError, IdentityError
from flotta.pki.identities import Identity, Role, parse_identity
from flotta.pki.keys import PublicKey, check_device_public_key, load_certificate, public_key_to_pem


def common_name(cert: x509.Certificate) -> str:
    """The certificate's CN (the MQTT username at the broker)."""
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1:
        raise CertificateError(f"certificate has {len(values)} common names, expected one")
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def certificate_identity(cert: x509.Certificate) -> Identity:
    """The role and name the certificate's CN stands for."""
    try:
        return parse_identity(common_name(cert))
    except IdentityError as exc:
        raise CertificateError(f"certificate identity is outside the contract: {exc}") from None


@dataclass(frozen=True, slots=True)
class DeviceCertificateInfo:
    """What the operator needs from a device certificate."""

    device_id: str
    namespace: str
    public_key: ec.EllipticCurvePublicKey  # P-256: what secrets are sealed for
    serial: int
    not_after: datetime

    @property
    def public_key_pem(self) -> bytes:
        return public_key_to_pem(self.public_key)


def device_certificate_info(cert: x509.Certificate) -> DeviceCertificateInfo:
    """Device id (CN), namespace (OU) and public key of a device certificate."""
    identity = certificate_identity(cert)
    if identity.role is not Role.DEVICE:
        raise CertificateError(f"{identity.common_name!r} is not a device certificate")
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(units) != 1:
        raise CertificateError(f"device certificate {identity.name!r} has no namespace (OU)")
    namespace = units[0].value
    try:
        key = check_device_public_key(cert.public_key())
    except CsrError as exc:
        raise CertificateError(f"device certificate {identity.name!r}: {exc}") from None
    return DeviceCertificateInfo(
        device_id=identity.name,
        namespace=namespace if isinstance(namespace, str) else namespace.decode(),
        public_key=key,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
    )


def same_public_key(a: PublicKey, b: PublicKey) -> bool:
    """Whether two public keys are the same key (to detect a device id claimed by another key)."""
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)


def device_certificate_info_from_pem(pem: bytes) -> DeviceCertificateInfo:
    return device_certificate_info(load_certificate(pem))


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``cert`` (validity dates are not checked here)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True

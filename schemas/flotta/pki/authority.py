"""The fleet CA: create it, issue server and client certificates, sign device CSRs.

All functions are pure (no files); ``now`` can be given to build certificates for any
point in time, which is also how tests build expired ones.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flotta.pki.errors import AuthorityExpiredError, CsrError
from flotta.pki.identities import Identity, Role, device_identity, namespace_label
from flotta.pki.keys import (
    PrivateKey,
    PublicKey,
    check_device_public_key,
    check_public_key,
    generate_key,
)

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=365)
CLIENT_VALIDITY = timedelta(days=365)
# Device certificates are short-lived and renewed over MQTT well before they expire.
DEVICE_VALIDITY = timedelta(days=7)
# Tolerates clocks of devices and broker that run a little behind the CA's.
BACKDATE = timedelta(minutes=5)
DEVICE_ORGANIZATION = "flotta-device"


@dataclass(frozen=True, slots=True)
class Authority:
    """The CA certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def create_authority(
    name: str = "Flotta fleet CA",
    *,
    validity: timedelta = CA_VALIDITY,
    now: datetime | None = None,
) -> Authority:
    """A new self-signed CA (path length 0: it signs leaf certificates only)."""
    key = generate_key()
    start = _now(now) - BACKDATE
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Flotta"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def _check_authority(authority: Authority, start: datetime, end: datetime) -> datetime:
    """Return the end of validity, clamped to the CA's; refuse an expired CA.

    A start before the CA's own start is allowed (TLS checks each certificate on its own).
    """
    ca = authority.certificate
    if start + BACKDATE >= ca.not_valid_after_utc:
        raise AuthorityExpiredError(
            f"the CA expired at {ca.not_valid_after_utc.isoformat()}; create a new one"
        )
    return min(end, ca.not_valid_after_utc)


def _leaf(
    authority: Authority,
    public_key: PublicKey,
    subject: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    validity: timedelta,
    now: datetime | None,
) -> x509.CertificateBuilder:
    start = _now(now) - BACKDATE
    end = _check_authority(authority, start, start + BACKDATE + validity)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )


def issue_server_certificate(
    authority: Authority,
    public_key: PublicKey,
    *,
    hostnames: Sequence[str] = ("localhost",),
    addresses: Sequence[str] = ("127.0.0.1", "::1"),
    validity: timedelta = SERVER_VALIDITY,
    now: datetime | None = None,
) -> x509.Certificate:
    """The broker's TLS server certificate with DNS and IP subject alternative names."""
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    try:
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    except ValueError as exc:
        raise CsrError(f"bad server address: {exc}") from None
    cn = hostnames[0] if hostnames else addresses[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = _leaf(
        authority,
        check_public_key(public_key),
        subject,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        validity=validity,
        now=now,
    ).add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(authority.key, hashes.SHA256())


def issue_client_certificate(
    authority: Authority,
    public_key: PublicKey,
    identity: Identity,
    *,
    namespace: str | None = None,
    validity: timedelta = CLIENT_VALIDITY,
    now: datetime | None = None,
) -> x509.Certificate:
    """A TLS client certificate whose CN is the identity (the broker's MQTT username).

    Device certificates also carry their namespace as the OU.
    """
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name)]
    if identity.role is Role.DEVICE:
        if namespace is None:
            raise CsrError(f"device {identity.name!r} needs a namespace")
        attributes = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEVICE_ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, namespace_label(namespace)),
            *attributes,
        ]
    builder = _leaf(
        authority,
        check_public_key(public_key),
        x509.Name(attributes),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        validity=validity,
        now=now,
    )
    return builder.sign(authority.key, hashes.SHA256())


def sign_device_csr(
    authority: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    device_id: str,
    namespace: str,
    validity: timedelta = DEVICE_VALIDITY,
    now: datetime | None = None,
) -> x509.Certificate:
    """Sign a device's CSR. The subject is forced: CN = device id, OU = namespace.

    Whatever else the CSR asks for (other names, extensions) is ignored. A CSR whose CN is
    present and differs from the device id is refused, since it shows a confused device.
    """
    if not csr.is_signature_valid:
        raise CsrError("CSR signature is invalid (the CSR was altered or signed with another key)")
    identity = device_identity(device_id)
    requested = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if requested and requested[0].value != device_id:
        raise CsrError(
            f"CSR common name {requested[0].value!r} does not match device id {device_id!r}"
        )
    return issue_client_certificate(
        authority,
        check_device_public_key(csr.public_key()),
        identity,
        namespace=namespace,
        validity=validity,
        now=now,
    )

"""The device's identity on disk: its key (generated here, never sent), its certificate and
the fleet CA. Every file is written atomically with mode 0600."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from flotta.agent.errors import IdentityError
from flotta.pki.certinfo import common_name
from flotta.pki.errors import PkiError
from flotta.pki.files import KEY_MODE, write_atomic
from flotta.pki.keys import (
    build_csr,
    csr_to_pem,
    generate_key,
    load_certificate,
    load_private_key,
    private_key_to_pem,
)

KEY_FILE = "device.key"
CERT_FILE = "device.crt"
CA_FILE = "ca.crt"


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    common_name: str
    not_before: datetime
    not_after: datetime
    serial: int


def renewal_due(status: CertificateStatus, now: datetime, *, fraction: float) -> datetime:
    """When to ask for a new certificate: at ``fraction`` of the validity period."""
    lifetime = status.not_after - status.not_before
    return status.not_before + timedelta(seconds=lifetime.total_seconds() * fraction)


def certificate_status(cert: x509.Certificate) -> CertificateStatus:
    return CertificateStatus(
        common_name=common_name(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
    )


class IdentityStore:
    """``<dir>/device.key``, ``device.crt``, ``ca.crt``."""

    def __init__(self, directory: Path, device_id: str) -> None:
        self.directory = directory
        self.device_id = device_id

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_FILE

    def ensure_key(self) -> ec.EllipticCurvePrivateKey:
        """The device key, generated on first use."""
        if self.key_path.exists():
            return self.load_key()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = generate_key()
        write_atomic(self.key_path, private_key_to_pem(key), mode=KEY_MODE)
        return key

    def load_key(self) -> ec.EllipticCurvePrivateKey:
        try:
            key = load_private_key(self.key_path.read_bytes())
        except (OSError, PkiError) as exc:
            raise IdentityError(f"device key {self.key_path}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IdentityError(f"device key {self.key_path} is not an EC key")
        return key

    def csr_pem(self) -> str:
        return csr_to_pem(build_csr(self.ensure_key(), self.device_id)).decode()

    def has_certificate(self) -> bool:
        return self.cert_path.exists() and self.ca_path.exists() and self.key_path.exists()

    def certificate(self) -> x509.Certificate:
        try:
            return load_certificate(self.cert_path.read_bytes())
        except (OSError, PkiError) as exc:
            raise IdentityError(f"device certificate {self.cert_path}: {exc}") from None

    def status(self) -> CertificateStatus | None:
        if not self.cert_path.exists():
            return None
        return certificate_status(self.certificate())

    def store_certificate(self, cert_pem: str, ca_pem: str) -> CertificateStatus:
        """Check that the certificate is ours (CN, key) and write it with the CA."""
        try:
            cert = load_certificate(cert_pem.encode())
            load_certificate(ca_pem.encode())
        except PkiError as exc:
            raise IdentityError(f"the issued certificate cannot be read: {exc}") from None
        status = certificate_status(cert)
        if status.common_name != self.device_id:
            raise IdentityError(
                f"the issued certificate is for {status.common_name!r}, not {self.device_id!r}"
            )
        if cert.public_key() != self.load_key().public_key():
            raise IdentityError("the issued certificate does not match the device key")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.ca_path, ca_pem.encode(), mode=KEY_MODE)
        write_atomic(self.cert_path, cert_pem.encode(), mode=KEY_MODE)
        return status

    def erase(self) -> None:
        """Remove the identity (deregistration)."""
        for path in (self.cert_path, self.ca_path, self.key_path):
            path.unlink(missing_ok=True)
        if self.directory.exists() and not any(self.directory.iterdir()):
            os.rmdir(self.directory)

"""The device's identity on disk: its key (generated here, never sent), its certificate and
the fleet CA. Every file is written atomically with mode 0600.

``cryptography`` is imported only when a key or certificate is actually handled (enrolment,
renewal, sealed secrets): the certificate's dates are kept in a small JSON file beside it, so
the daemon's steady state does without the library (about 8 MiB of resident memory).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flotta.agent.errors import IdentityError
from flotta.pki.errors import PkiError
from flotta.pki.files import KEY_MODE, write_atomic

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = "device.key"
CERT_FILE = "device.crt"
CA_FILE = "ca.crt"
CERT_INFO_FILE = "device.json"


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
    from flotta.pki.cert_info import common_name

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

    @property
    def info_path(self) -> Path:
        return self.directory / CERT_INFO_FILE

    def ensure_key(self) -> ec.EllipticCurvePrivateKey:
        """The device key, generated on first use."""
        from flotta.pki.keys import generate_key, private_key_to_pem

        if self.key_path.exists():
            return self.load_key()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = generate_key()
        write_atomic(self.key_path, private_key_to_pem(key), mode=KEY_MODE)
        return key

    def load_key(self) -> ec.EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives.asymmetric import ec

        from flotta.pki.keys import load_private_key

        try:
            key = load_private_key(self.key_path.read_bytes())
        except (OSError, PkiError) as exc:
            raise IdentityError(f"device key {self.key_path}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IdentityError(f"device key {self.key_path} is not an EC key")
        return key

    def csr_pem(self) -> str:
        from flotta.pki.keys import build_csr, csr_to_pem

        return csr_to_pem(build_csr(self.ensure_key(), self.device_id)).decode()

    def has_certificate(self) -> bool:
        return self.cert_path.exists() and self.ca_path.exists() and self.key_path.exists()

    def certificate(self) -> x509.Certificate:
        from flotta.pki.keys import load_certificate

        try:
            return load_certificate(self.cert_path.read_bytes())
        except (OSError, PkiError) as exc:
            raise IdentityError(f"device certificate {self.cert_path}: {exc}") from None

    def status(self) -> CertificateStatus | None:
        """The certificate's name, dates and serial (from the JSON beside it when it is there)."""
        if not self.cert_path.exists():
            return None
        try:
            document = json.loads(self.info_path.read_text())
            return CertificateStatus(
                common_name=str(document["common_name"]),
                not_before=datetime.fromisoformat(document["not_before"]),
                not_after=datetime.fromisoformat(document["not_after"]),
                serial=int(document["serial"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            status = certificate_status(self.certificate())
            self._write_info(status)
            return status

    def _write_info(self, status: CertificateStatus) -> None:
        document = {
            "common_name": status.common_name,
            "not_before": status.not_before.isoformat(),
            "not_after": status.not_after.isoformat(),
            "serial": status.serial,
        }
        write_atomic(self.info_path, json.dumps(document).encode(), mode=KEY_MODE)

    def store_certificate(self, cert_pem: str, ca_pem: str) -> CertificateStatus:
        """Check that the certificate is ours (CN, key) and write it with the CA."""
        from flotta.pki.keys import load_certificate

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
        self._write_info(status)
        return status

    def erase(self) -> None:
        """Remove the identity (deregistration)."""
        for path in (self.info_path, self.cert_path, self.ca_path, self.key_path):
            path.unlink(missing_ok=True)
        if self.directory.exists() and not any(self.directory.iterdir()):
            os.rmdir(self.directory)

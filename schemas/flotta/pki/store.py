"""The PKI directory: CA, CRL, broker and client certificates, and a record of issued ones.

<root>/ca.crt ca.key            the fleet CA (key 0600)
<root>/crl.pem revoked.json     the CRL the broker loads, and the revoked serials behind it
<root>/server.crt server.key    the broker's TLS certificate
<root>/clients/<name>.crt|.key  internal, observer and bootstrap identities
<root>/issued/<SERIAL>.crt      every certificate this CA issued (for ``show`` and ``revoke``)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from flotta.pki.authority import (
    CA_VALIDITY,
    CLIENT_VALIDITY,
    DEVICE_VALIDITY,
    SERVER_VALIDITY,
    Authority,
    create_authority,
    issue_client_certificate,
    issue_server_certificate,
    sign_device_csr,
)
from flotta.pki.errors import CertificateError, StoreError
from flotta.pki.files import KEY_MODE, write_atomic
from flotta.pki.identities import Identity, file_stem
from flotta.pki.keys import (
    certificate_to_pem,
    generate_key,
    load_certificate,
    load_csr,
    load_private_key,
    private_key_to_pem,
)
from flotta.pki.revocation import (
    CRL_VALIDITY,
    RevokedEntry,
    build_crl,
    decode_revoked,
    encode_revoked,
)


@dataclass(frozen=True, slots=True)
class IssuedFiles:
    """A certificate and its private key on disk."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate


class PkiStore:
    """A PKI directory. ``create`` makes a new one, ``open`` checks an existing one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._authority: Authority | None = None

    @property
    def ca_cert_path(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.root / "ca.key"

    @property
    def crl_path(self) -> Path:
        return self.root / "crl.pem"

    @property
    def revoked_path(self) -> Path:
        return self.root / "revoked.json"

    @property
    def server_cert_path(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key_path(self) -> Path:
        return self.root / "server.key"

    @property
    def clients_dir(self) -> Path:
        return self.root / "clients"

    @property
    def issued_dir(self) -> Path:
        return self.root / "issued"

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        ca_name: str = "Flotta fleet CA",
        validity: timedelta = CA_VALIDITY,
        now: datetime | None = None,
    ) -> PkiStore:
        """A new PKI directory with a fresh CA and an empty CRL; refuses to overwrite a CA."""
        store = cls(root)
        if store.ca_key_path.exists() or store.ca_cert_path.exists():
            raise StoreError(f"{root} already holds a CA; refusing to overwrite it")
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            store.clients_dir.mkdir(mode=0o700, exist_ok=True)
            store.issued_dir.mkdir(mode=0o755, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create PKI directory {root}: {exc.strerror}") from None
        authority = create_authority(ca_name, validity=validity, now=now)
        write_atomic(store.ca_key_path, private_key_to_pem(authority.key), mode=KEY_MODE)
        write_atomic(store.ca_cert_path, certificate_to_pem(authority.certificate))
        store._authority = authority
        store.write_crl(now=now)
        return store

    @classmethod
    def open(cls, root: Path) -> PkiStore:
        """An existing PKI directory; raise StoreError naming what is missing."""
        store = cls(root)
        if not root.is_dir():
            raise StoreError(f"PKI directory {root} does not exist (run 'flotta pki init' first)")
        for path in (store.ca_cert_path, store.ca_key_path):
            if not path.is_file():
                raise StoreError(f"PKI directory {root} has no {path.name}")
        return store

    def authority(self) -> Authority:
        """The CA certificate and key, read once."""
        if self._authority is None:
            check_key_permissions(self.ca_key_path)
            cert = load_certificate(self._read(self.ca_cert_path))
            key = load_private_key(self._read(self.ca_key_path))
            if cert.public_key() != key.public_key():
                raise StoreError(f"{self.ca_key_path} is not the key of {self.ca_cert_path}")
            self._authority = Authority(cert, key)
        return self._authority

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"missing file {path}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None

    def _record(self, cert: x509.Certificate) -> None:
        self.issued_dir.mkdir(mode=0o755, exist_ok=True)
        write_atomic(self.issued_dir / f"{cert.serial_number:X}.crt", certificate_to_pem(cert))

    def _write_pair(
        self, cert_path: Path, key_path: Path, cert: x509.Certificate, key_pem: bytes
    ) -> IssuedFiles:
        cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(key_path, key_pem, mode=KEY_MODE)
        write_atomic(cert_path, certificate_to_pem(cert))
        self._record(cert)
        return IssuedFiles(cert_path, key_path, cert)

    def issue_server(
        self,
        *,
        hostnames: Sequence[str] = ("localhost",),
        addresses: Sequence[str] = ("127.0.0.1", "::1"),
        validity: timedelta = SERVER_VALIDITY,
        now: datetime | None = None,
    ) -> IssuedFiles:
        """A new key and server certificate for the broker (``server.crt``/``server.key``)."""
        key = generate_key()
        cert = issue_server_certificate(
            self.authority(),
            key.public_key(),
            hostnames=hostnames,
            addresses=addresses,
            validity=validity,
            now=now,
        )
        return self._write_pair(
            self.server_cert_path, self.server_key_path, cert, private_key_to_pem(key)
        )

    def issue_client(
        self,
        identity: Identity,
        *,
        namespace: str | None = None,
        validity: timedelta = CLIENT_VALIDITY,
        now: datetime | None = None,
        out_dir: Path | None = None,
    ) -> IssuedFiles:
        """A new key and client certificate for an identity, in ``clients/`` or ``out_dir``."""
        key = generate_key()
        cert = issue_client_certificate(
            self.authority(),
            key.public_key(),
            identity,
            namespace=namespace,
            validity=validity,
            now=now,
        )
        directory = out_dir if out_dir is not None else self.clients_dir
        stem = file_stem(identity)
        return self._write_pair(
            directory / f"{stem}.crt", directory / f"{stem}.key", cert, private_key_to_pem(key)
        )

    def sign_device_csr(
        self,
        csr_pem: bytes,
        *,
        device_id: str,
        namespace: str,
        validity: timedelta = DEVICE_VALIDITY,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """Sign a device CSR (CN forced to the device id) and record the certificate."""
        cert = sign_device_csr(
            self.authority(),
            load_csr(csr_pem),
            device_id=device_id,
            namespace=namespace,
            validity=validity,
            now=now,
        )
        self._record(cert)
        return cert

    def revoked(self) -> list[RevokedEntry]:
        if not self.revoked_path.exists():
            return []
        return decode_revoked(self._read(self.revoked_path))

    def revoke(self, serial: int, *, note: str = "", now: datetime | None = None) -> bool:
        """Add a serial to the revoked list; False when it was already there.

        The CRL is not rewritten: call ``write_crl`` (one CRL for many revocations).
        """
        entries = self.revoked()
        if any(e.serial == serial for e in entries):
            return False
        at = (now if now is not None else datetime.now(UTC)).replace(microsecond=0)
        entries.append(RevokedEntry(serial, at, note))
        write_atomic(self.revoked_path, encode_revoked(entries))
        return True

    def write_crl(
        self, *, validity: timedelta = CRL_VALIDITY, now: datetime | None = None
    ) -> x509.CertificateRevocationList:
        """Build the CRL from the revoked list and write ``crl.pem`` atomically."""
        crl = build_crl(self.authority(), self.revoked(), validity=validity, now=now)
        write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return crl

    def issued(self) -> list[x509.Certificate]:
        """Every certificate recorded in ``issued/``, oldest first."""
        if not self.issued_dir.is_dir():
            return []
        certs = []
        for path in sorted(self.issued_dir.glob("*.crt")):
            try:
                certs.append(load_certificate(self._read(path)))
            except CertificateError as exc:
                raise StoreError(f"{path}: {exc}") from None
        return sorted(certs, key=lambda c: c.not_valid_before_utc)

    def find_issued(self, serial: int) -> x509.Certificate | None:
        path = self.issued_dir / f"{serial:X}.crt"
        return load_certificate(self._read(path)) if path.exists() else None


def check_key_permissions(path: Path) -> None:
    """Refuse a private key that group or others may read or write."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        raise StoreError(f"missing file {path}") from None
    if mode & 0o077:
        raise StoreError(f"{path} has mode {mode:o}; private keys must be 0600 (chmod 600 it)")

"""Revocation: the persisted list of revoked serials and the CRL built from it.

Mosquitto (OpenSSL) refuses every client once the CRL's next update has passed, so the
CRL must be re-issued well before ``CRL_VALIDITY`` runs out (``flotta pki crl``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from flotta.pki.authority import BACKDATE, Authority
from flotta.pki.errors import PkiError, StoreError

CRL_VALIDITY = timedelta(days=30)
REVOKED_LIST_VERSION = 1


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    note: str = ""


def build_crl(
    authority: Authority,
    entries: Iterable[RevokedEntry],
    *,
    validity: timedelta = CRL_VALIDITY,
    now: datetime | None = None,
    number: int | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by the CA listing every revoked serial."""
    start = (now if now is not None else datetime.now(UTC)) - BACKDATE
    crl_number = number if number is not None else int(start.timestamp())
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(start)
        .next_update(start + BACKDATE + validity)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
            .build()
        )
    return builder.sign(authority.key, hashes.SHA256())


def encode_revoked(entries: Iterable[RevokedEntry]) -> bytes:
    """The revoked list as JSON (serials in hex, as ``openssl x509 -serial`` prints them)."""
    body = {
        "version": REVOKED_LIST_VERSION,
        "revoked": [
            {"serial": f"{e.serial:X}", "revokedAt": e.revoked_at.isoformat(), "note": e.note}
            for e in sorted(entries, key=lambda e: e.serial)
        ],
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def decode_revoked(data: bytes) -> list[RevokedEntry]:
    """Parse the revoked list; raise StoreError when it is not ours."""
    try:
        body = json.loads(data)
        if body.get("version") != REVOKED_LIST_VERSION:
            raise StoreError(f"revoked list has version {body.get('version')!r}, expected 1")
        return [
            RevokedEntry(
                serial=int(item["serial"], 16),
                revoked_at=datetime.fromisoformat(item["revokedAt"]),
                note=str(item.get("note", "")),
            )
            for item in body["revoked"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"revoked list is corrupt: {exc!r}") from None


def parse_serial(text: str) -> int:
    """A serial given in hex (``1A:2B``, ``0x1a2b``, ``1a2b``)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise PkiError(f"{text!r} is not a serial number in hexadecimal") from None
    if value <= 0:
        raise PkiError(f"{text!r} is not a valid serial number")
    return value

"""Issue device identities straight from the fleet PKI, so a large simulated fleet need not
enrol device by device. The key is generated here and the CSR signed with the CN forced to the
device id, exactly as the operator does after an approved enrolment."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flotta.pki.files import KEY_MODE, write_atomic
from flotta.pki.keys import (
    build_csr,
    certificate_to_pem,
    csr_to_pem,
    generate_key,
    private_key_to_pem,
)
from flotta.pki.store import PkiStore

CERT_NAME = "device.crt"
KEY_NAME = "device.key"


def device_dir(state_dir: Path, device_id: str) -> Path:
    return state_dir / device_id


def has_identity(state_dir: Path, device_id: str) -> bool:
    directory = device_dir(state_dir, device_id)
    return (directory / CERT_NAME).exists() and (directory / KEY_NAME).exists()


def provision(
    store: PkiStore, state_dir: Path, device_ids: Iterable[str], *, namespace: str
) -> int:
    """Give every device without one a key and a certificate; returns how many were issued."""
    issued = 0
    for device_id in device_ids:
        if has_identity(state_dir, device_id):
            continue
        directory = device_dir(state_dir, device_id)
        directory.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        cert = store.sign_device_csr(
            csr_to_pem(build_csr(key, device_id)), device_id=device_id, namespace=namespace
        )
        write_atomic(directory / KEY_NAME, private_key_to_pem(key), mode=KEY_MODE)
        write_atomic(directory / CERT_NAME, certificate_to_pem(cert))
        issued += 1
    return issued

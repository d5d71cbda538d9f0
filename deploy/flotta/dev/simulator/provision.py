"""Issue device identities straight from the fleet PKI, so a large simulated fleet need not
enrol device by device. The key is generated here and the CSR signed with the CN forced to the
device id, exactly as the operator does after an approved enrolment. The fleet PKI records every
certificate durably; the simulator's own copies are written without fsync (they are test state,
and a lost one is simply issued again), and several devices are issued at once."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flotta.pki.files import KEY_MODE, PUBLIC_MODE
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
    store: PkiStore,
    state_dir: Path,
    device_ids: Iterable[str],
    *,
    namespace: str,
    workers: int = 8,
) -> int:
    """Give every device without one a key and a certificate; returns how many were issued."""
    missing = [i for i in device_ids if not has_identity(state_dir, i)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: _issue(store, state_dir, i, namespace), missing))
    return len(missing)


def _issue(store: PkiStore, state_dir: Path, device_id: str, namespace: str) -> None:
    directory = device_dir(state_dir, device_id)
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    cert = store.sign_device_csr(
        csr_to_pem(build_csr(key, device_id)), device_id=device_id, namespace=namespace
    )
    _write(directory / KEY_NAME, private_key_to_pem(key), KEY_MODE)
    _write(directory / CERT_NAME, certificate_to_pem(cert), PUBLIC_MODE)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
    os.replace(tmp, path)

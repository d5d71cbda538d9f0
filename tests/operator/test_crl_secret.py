"""The CRL published into a Secret (``--crl-secret``), against the local Kubernetes API: what
the Secret holds after a revocation, a missing Secret, the revoked list kept across a lost
PKI volume, re-issue before expiry, and a device deletion through the running operator."""

from __future__ import annotations

import asyncio
import base64
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client

from flotta.operator.crl_secret import (
    CRL_KEY,
    REVOKED_KEY,
    CrlPublisher,
    CrlSecret,
    SecretRef,
)
from flotta.operator.errors import OperatorError, TransportError
from flotta.pki.revocation import CRL_VALIDITY, decode_revoked
from flotta.pki.store import PkiStore
from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION
from tests.fixtures.kube import KubeEndpoint
from tests.fixtures.kubetypes import obj
from tests.operator.conftest import ENROLMENT_NAMESPACE, NAMESPACE, Stack, wait_until

SECRET = SecretRef(ENROLMENT_NAMESPACE, "flotta-crl")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create_secret(core: client.CoreV1Api, pki: PkiStore) -> None:
    """As the admin does at install time: the CRL of ``flotta pki init``."""
    core.create_namespaced_secret(
        SECRET.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=SECRET.name),
            data={CRL_KEY: b64(pki.crl_path.read_bytes())},
        ),
    )


def secret_data(core: client.CoreV1Api) -> dict[str, bytes]:
    secret = core.read_namespaced_secret(SECRET.name, SECRET.namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _resource_version(core: client.CoreV1Api) -> str:
    metadata = core.read_namespaced_secret(SECRET.name, SECRET.namespace).metadata
    assert metadata is not None
    return str(metadata.resource_version)


def revoked_serials(pem: bytes) -> set[int]:
    return {entry.serial_number for entry in x509.load_pem_x509_crl(pem)}


@pytest.fixture
def core(kube_api: KubeEndpoint) -> client.CoreV1Api:
    api = kube_api.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ENROLMENT_NAMESPACE))
    )
    return core


def publisher(core: client.CoreV1Api, pki: PkiStore, **settings: Any) -> CrlPublisher:
    return CrlPublisher(pki, CrlSecret(core.api_client, SECRET), **settings)


def test_secret_ref_is_namespace_slash_name() -> None:
    assert SecretRef.parse("flotta/flotta-crl") == SECRET
    assert str(SECRET) == "flotta/flotta-crl"
    for bad in ("flotta-crl", "flotta/", "/x", "Flotta/x", "a/b/c"):
        with pytest.raises(OperatorError):
            SecretRef.parse(bad)


def test_reload_writes_the_crl_and_the_revoked_list(
    core: client.CoreV1Api, fleet_pki: PkiStore
) -> None:
    create_secret(core, fleet_pki)
    assert fleet_pki.revoke(0x1A2B, note="device d1 deleted")
    publisher(core, fleet_pki).reload()
    data = secret_data(core)
    assert revoked_serials(data[CRL_KEY]) == {0x1A2B}
    assert data[CRL_KEY] == fleet_pki.crl_path.read_bytes()
    (entry,) = decode_revoked(data[REVOKED_KEY])
    assert (entry.serial, entry.note) == (0x1A2B, "device d1 deleted")
    crl = x509.load_pem_x509_crl(data[CRL_KEY])
    assert crl.is_signature_valid(fleet_pki.authority().certificate.public_key())  # type: ignore[arg-type]


def test_a_missing_secret_is_a_transport_error_that_says_what_to_do(
    core: client.CoreV1Api, fleet_pki: PkiStore
) -> None:
    with pytest.raises(TransportError, match="does not exist: create it"):
        publisher(core, fleet_pki).reload()
    with pytest.raises(TransportError, match="does not exist"):
        publisher(core, fleet_pki).sync()


def test_sync_writes_the_current_crl_unchanged_until_it_is_due(
    core: client.CoreV1Api, fleet_pki: PkiStore
) -> None:
    create_secret(core, fleet_pki)
    before = fleet_pki.crl_path.read_bytes()
    crl = publisher(core, fleet_pki)
    assert crl.sync() is False  # fresh: not re-issued, written as it is
    assert secret_data(core)[CRL_KEY] == before
    version = _resource_version(core)
    assert crl.sync() is False
    again = _resource_version(core)
    assert again == version  # the same content is no write
    # Eleven days on, fewer than two thirds of the 30 days are left: re-issued.
    later = datetime.now(UTC) + timedelta(days=11)
    assert crl.sync(now=later) is True
    issued = x509.load_pem_x509_crl(secret_data(core)[CRL_KEY])
    assert issued.next_update_utc is not None
    assert issued.next_update_utc > later + CRL_VALIDITY - timedelta(minutes=10)


def test_a_lost_pki_volume_gets_the_revoked_serials_back(
    core: client.CoreV1Api, fleet_pki: PkiStore, tmp_path: Path
) -> None:
    create_secret(core, fleet_pki)
    fleet_pki.revoke(0xAA, note="device a deleted")
    publisher(core, fleet_pki).reload()
    # A new volume: the CA from the Secret, nothing else.
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(fleet_pki.root / name, fresh / name)
    store = PkiStore.open(fresh)
    store.revoke(0xBB, note="device b deleted")
    crl = publisher(core, store)
    assert crl.sync() is True  # the Secret had a serial this directory did not
    data = secret_data(core)
    assert revoked_serials(data[CRL_KEY]) == {0xAA, 0xBB}
    assert {e.serial for e in decode_revoked(data[REVOKED_KEY])} == {0xAA, 0xBB}
    assert {e.serial for e in store.revoked()} == {0xBB}  # the store's own list is untouched
    store.revoke(0xCC)
    crl.reload()  # later revocations keep the restored ones
    assert revoked_serials(secret_data(core)[CRL_KEY]) == {0xAA, 0xBB, 0xCC}


def test_a_revocation_before_the_first_sync_keeps_the_secrets_serials(
    core: client.CoreV1Api, fleet_pki: PkiStore, tmp_path: Path
) -> None:
    """The clean-up may revoke before keep_fresh ran: the Secret's list is read first."""
    create_secret(core, fleet_pki)
    fleet_pki.revoke(0xAA)
    publisher(core, fleet_pki).reload()
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(fleet_pki.root / name, fresh / name)
    store = PkiStore.open(fresh)
    store.revoke(0xBB)
    publisher(core, store).reload()
    assert revoked_serials(secret_data(core)[CRL_KEY]) == {0xAA, 0xBB}


def test_serials_of_expired_certificates_are_left_out(
    core: client.CoreV1Api, fleet_pki: PkiStore
) -> None:
    """A Secret holds 1 MiB: what TLS refuses anyway (expired) is not published."""
    from flotta.pki.keys import build_csr, csr_to_pem, generate_key

    def signed(device_id: str, now: datetime) -> int:
        csr = csr_to_pem(build_csr(generate_key(), device_id))
        cert = fleet_pki.sign_device_csr(csr, device_id=device_id, namespace="fleet", now=now)
        return cert.serial_number

    expired = signed("old", datetime.now(UTC) - timedelta(days=10))  # 7-day certificate
    current = signed("new", datetime.now(UTC))
    for serial in (expired, current, 0xDEAD):  # 0xDEAD: no record of it, kept
        fleet_pki.revoke(serial)
    create_secret(core, fleet_pki)
    publisher(core, fleet_pki).reload()
    data = secret_data(core)
    assert revoked_serials(data[CRL_KEY]) == {current, 0xDEAD}
    assert {e.serial for e in decode_revoked(data[REVOKED_KEY])} == {current, 0xDEAD}
    assert {e.serial for e in fleet_pki.revoked()} == {expired, current, 0xDEAD}


async def test_keep_fresh_retries_until_the_secret_exists(
    core: client.CoreV1Api, fleet_pki: PkiStore
) -> None:
    fleet_pki.revoke(0x77)
    crl = publisher(core, fleet_pki)
    task = asyncio.create_task(crl.keep_fresh(interval=3600, retry=0.1))
    try:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(create_secret, core, fleet_pki)

        def published() -> bool:
            return REVOKED_KEY in secret_data(core)

        deadline = asyncio.get_running_loop().time() + 10
        while not await asyncio.to_thread(published):
            assert asyncio.get_running_loop().time() < deadline, "never published"
            await asyncio.sleep(0.1)
        assert 0x77 in revoked_serials(secret_data(core)[CRL_KEY])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# ---- through the operator --------------------------------------------------------------


def test_deleting_a_device_publishes_its_revocation_once_the_secret_can_be_written(
    stack: Stack,
) -> None:
    """The clean-up waits for the Secret: the finalizer stays while the write fails."""
    pki = stack.broker.pki
    crl = CrlPublisher(pki, CrlSecret(stack.api, SECRET))
    running = stack.start_operator(reload_crl=crl.reload)
    credentials = stack.broker.device("d1", namespace=NAMESPACE)
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        {"apiVersion": API_VERSION, "kind": "EdgeDevice", "metadata": {"name": "d1"}, "spec": {}},
    )
    stack.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d1",
        {"status": {"certificate": {"serial": f"{credentials.serial:X}"}}},
        _content_type="application/merge-patch+json",
    )
    wait_until(lambda: "flotta.io/device-cleanup" in finalizers(stack, "d1"))
    stack.objects.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgedevices", "d1")
    # No Secret yet: revoked in the PKI directory, but the device is kept.
    wait_until(lambda: credentials.serial in {e.serial for e in pki.revoked()})
    wait_until(lambda: running.metric("flotta_operator_errors_total", {"kind": "cleanup"}) >= 1)
    assert finalizers(stack, "d1") == ["flotta.io/device-cleanup"]
    create_secret(stack.core, pki)
    wait_until(lambda: not finalizers(stack, "d1"), timeout=20)
    assert credentials.serial in revoked_serials(secret_data(stack.core)[CRL_KEY])


def finalizers(stack: Stack, name: str) -> list[str]:
    from kubernetes.client.exceptions import ApiException

    try:
        device = obj(
            stack.objects.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "edgedevices", name
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return list(device["metadata"].get("finalizers") or [])


# ---- the command line ------------------------------------------------------------------


def test_command_line_refuses_a_bad_secret_and_both_ways_at_once(tmp_path: Path) -> None:
    from tests.operator.test_cli import flotta

    PkiStore.create(tmp_path / "pki")
    bad = flotta("operator", "run", "--pki-dir", str(tmp_path / "pki"), "--crl-secret", "nope")
    assert bad.returncode == 2
    assert "expected NAMESPACE/NAME" in bad.stdout + bad.stderr
    both = flotta(
        "operator",
        "run",
        "--pki-dir",
        str(tmp_path / "pki"),
        "--crl-secret",
        "flotta/flotta-crl",
        "--broker-pid-file",
        str(tmp_path / "pid"),
    )
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr

"""The CRL for brokers in a cluster: published into a Kubernetes Secret (``--crl-secret``).

On one machine the operator and Mosquitto share the PKI directory's ``crl.pem`` and the
operator sends the broker SIGHUP (``--broker-pid-file``). In a cluster they are different
pods: with ``--crl-secret NAMESPACE/NAME`` the operator's ``reload_crl`` re-issues the CRL
and merge-patches it into that Secret (keys ``crl.pem`` and ``revoked.json``). The broker pod
mounts the Secret (not with ``subPath``, so the kubelet keeps the file current) and its
reloader sidecar (``flotta.mosquitto.reloader``) sends Mosquitto SIGHUP when it changes.

The Secret also keeps the revoked list: a PKI directory that lost it (a new volume) gets the
Secret's entries back on the first ``sync``, so a deleted device stays revoked. Those entries
are kept in memory and joined to the directory's own list in every CRL issued here; the
directory's ``revoked.json`` is only ever written by the PKI store.

``keep_fresh`` (run by the replica that holds the lease) re-issues the CRL well before its
``nextUpdate``: once that has passed, OpenSSL in Mosquitto refuses every client. A Secret
holds at most 1 MiB, so serials whose certificate has expired (TLS refuses those anyway) are
left out of what is published.

The Secret must exist (created with the fleet PKI, see ``docs/deploying.md``): the operator
may only get and patch that one Secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.operator.errors import OperatorError, TransportError
from flotta.pki.errors import PkiError
from flotta.pki.files import write_atomic
from flotta.pki.revocation import (
    CRL_VALIDITY,
    RevokedEntry,
    build_crl,
    decode_revoked,
    encode_revoked,
)
from flotta.pki.store import PkiStore
from flotta.schemas.topics import NAMESPACE_PATTERN

logger = logging.getLogger(__name__)

CRL_KEY = "crl.pem"
REVOKED_KEY = "revoked.json"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (5.0, 30.0)
NOT_FOUND = 404
FORBIDDEN = 403
REFRESH_INTERVAL = 3600.0  # seconds between checks of the CRL's age
RETRY_INTERVAL = 30.0  # seconds before a failed sync is tried again
EXPIRED_GRACE = timedelta(days=1)  # an expired certificate stays listed this long (clock skew)
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a DNS subdomain


@dataclass(frozen=True, slots=True)
class SecretRef:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """``NAMESPACE/NAME``; raise OperatorError otherwise."""
        namespace, _, name = text.partition("/")
        if not NAMESPACE_PATTERN.fullmatch(namespace) or not SECRET_NAME.fullmatch(name):
            raise OperatorError(f"--crl-secret {text!r}: expected NAMESPACE/NAME")
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class CrlSink(Protocol):
    """Where the CRL goes: the Secret here, a fake in a unit test."""

    def read_revoked(self) -> list[RevokedEntry]: ...

    def write(self, crl_pem: bytes, revoked_json: bytes) -> None: ...


class CrlSecret:
    """The Secret that holds the CRL: get it, merge-patch its two keys (blocking calls)."""

    def __init__(self, api: client.ApiClient, ref: SecretRef) -> None:
        self._core = client.CoreV1Api(api)
        self.ref = ref

    def read_revoked(self) -> list[RevokedEntry]:
        """The revoked list kept in the Secret (empty when it has none yet)."""
        try:
            secret = self._core.read_namespaced_secret(
                self.ref.name, self.ref.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except (ApiException, HTTPError, OSError) as exc:
            raise self._error("read", exc) from None
        data = cast(dict[str, str], secret.data or {})
        if REVOKED_KEY not in data:
            return []
        try:
            return decode_revoked(base64.b64decode(data[REVOKED_KEY], validate=True))
        except (binascii.Error, PkiError) as exc:
            raise PkiError(f"Secret {self.ref}: {REVOKED_KEY} cannot be read: {exc}") from None

    def write(self, crl_pem: bytes, revoked_json: bytes) -> None:
        body: dict[str, Any] = {
            "data": {
                CRL_KEY: base64.b64encode(crl_pem).decode(),
                REVOKED_KEY: base64.b64encode(revoked_json).decode(),
            }
        }
        try:
            self._core.patch_namespaced_secret(
                self.ref.name,
                self.ref.namespace,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except (ApiException, HTTPError, OSError) as exc:
            raise self._error("patch", exc) from None

    def _error(self, action: str, exc: Exception) -> TransportError:
        status = exc.status if isinstance(exc, ApiException) else None
        if status == NOT_FOUND:
            return TransportError(
                f"Secret {self.ref} does not exist: create it with the fleet PKI's crl.pem "
                "(see docs/deploying.md)"
            )
        if status == FORBIDDEN:
            return TransportError(
                f"{action} Secret {self.ref}: forbidden (the operator's Role must allow "
                "get and patch on this Secret by name)"
            )
        detail = f"{status} {exc.reason}" if isinstance(exc, ApiException) else repr(exc)
        return TransportError(f"{action} Secret {self.ref}: {detail}")


class CrlPublisher:
    """Issues the CRL from the revoked lists and writes it to the sink.

    ``reload`` is the operator's ``reload_crl`` (called in a worker thread after a
    revocation); ``sync`` restores, re-issues when due and writes; both hold one lock, so a
    CRL issued earlier never overwrites a later one in the Secret.
    """

    def __init__(
        self,
        store: PkiStore,
        sink: CrlSink,
        *,
        validity: timedelta = CRL_VALIDITY,
        renew_before: timedelta | None = None,
    ) -> None:
        self._store = store
        self._sink = sink
        self._validity = validity
        # Re-issue once fewer than two thirds of the validity are left (every ~10 days).
        self._renew_before = renew_before if renew_before is not None else validity * 2 / 3
        self._lock = threading.Lock()
        self._restored: dict[int, RevokedEntry] = {}
        self._not_after: dict[int, datetime | None] = {}  # per revoked serial, from issued/
        self._restored_from_sink = False

    def reload(self) -> None:
        """Re-issue the CRL and write it; raise TransportError when the sink failed."""
        with self._lock:
            self._restore_once()  # never overwrite the Secret's list before reading it
            self._write(*self._issue())

    def sync(self, now: datetime | None = None) -> bool:
        """Restore the sink's revoked entries (first call), re-issue the CRL when it is missing,
        due or lacks a revoked serial, write it. True when a new CRL was issued."""
        with self._lock:
            added = self._restore_once()
            current = self._read_local()
            issued = added or current is None or self._stale(current, now)
            pem, revoked = self._issue(now) if issued else (current, self._revoked_json(now))
            assert pem is not None
            self._write(pem, revoked)
            return issued

    async def keep_fresh(
        self, *, interval: float = REFRESH_INTERVAL, retry: float = RETRY_INTERVAL
    ) -> None:
        """Sync now, then check the CRL's age every ``interval`` seconds (until cancelled)."""
        while True:
            try:
                if await asyncio.to_thread(self.sync):
                    logger.info("CRL issued and published")
                delay = interval
            except (TransportError, PkiError, OSError) as exc:
                logger.warning("CRL not published, retrying in %.0f s: %s", retry, exc)
                delay = retry
            await asyncio.sleep(delay)

    # ---- helpers -------------------------------------------------------------------------

    def _entries(self, now: datetime | None = None) -> list[RevokedEntry]:
        """The serials to publish: the store's and the restored ones, less those whose
        certificate expired more than ``EXPIRED_GRACE`` ago. TLS refuses an expired
        certificate anyway, and the Secret must stay under 1 MiB: a week-long device
        certificate leaves the CRL about a week after it was revoked."""
        moment = now if now is not None else datetime.now(UTC)
        entries = {entry.serial: entry for entry in self._store.revoked()}
        for serial, entry in self._restored.items():
            entries.setdefault(serial, entry)
        kept = (e for e in entries.values() if not self._expired(e.serial, moment))
        return sorted(kept, key=lambda entry: entry.serial)

    def _expired(self, serial: int, now: datetime) -> bool:
        if serial not in self._not_after:
            try:
                cert = self._store.find_issued(serial)
            except PkiError:
                cert = None
            self._not_after[serial] = cert.not_valid_after_utc if cert is not None else None
        not_after = self._not_after[serial]
        return not_after is not None and not_after + EXPIRED_GRACE < now

    def _revoked_json(self, now: datetime | None = None) -> bytes:
        return encode_revoked(self._entries(now))

    def _issue(self, now: datetime | None = None) -> tuple[bytes, bytes]:
        entries = self._entries(now)
        crl = build_crl(self._store.authority(), entries, validity=self._validity, now=now)
        pem = crl.public_bytes(serialization.Encoding.PEM)
        write_atomic(self._store.crl_path, pem)
        return pem, encode_revoked(entries)

    def _restore_once(self) -> bool:
        """On the first call: keep the sink's serials this directory lacks; True if any."""
        if self._restored_from_sink:
            return False
        local = {entry.serial for entry in self._store.revoked()}
        missing = [e for e in self._sink.read_revoked() if e.serial not in local]
        for entry in missing:
            self._restored[entry.serial] = entry
        if missing:
            logger.warning(
                "%d revoked serials were in the CRL Secret but not in %s; kept revoked",
                len(missing),
                self._store.revoked_path,
            )
        self._restored_from_sink = True
        return bool(missing)

    def _read_local(self) -> bytes | None:
        path: Path = self._store.crl_path
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def _stale(self, pem: bytes, now: datetime | None) -> bool:
        """Unreadable, due for re-issue, or missing a serial of the revoked lists."""
        try:
            crl = x509.load_pem_x509_crl(pem)
        except ValueError:
            return True
        next_update = crl.next_update_utc
        moment = now if now is not None else datetime.now(UTC)
        if next_update is None or next_update - moment < self._renew_before:
            return True
        listed = {revoked.serial_number for revoked in crl}
        return any(entry.serial not in listed for entry in self._entries(now))

    def _write(self, pem: bytes, revoked: bytes) -> None:
        self._sink.write(pem, revoked)


def secret_publisher(pki_dir: Path, secret: str, kubeconfig: Path | None) -> CrlPublisher:
    """A publisher into ``NAMESPACE/NAME`` with the operator's API configuration."""
    from flotta.operator.app import api_client

    ref = SecretRef.parse(secret)
    store = PkiStore.open(pki_dir)
    return CrlPublisher(store, CrlSecret(api_client(kubeconfig), ref))

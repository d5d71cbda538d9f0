"""Public keys of device certificates, read from the certificates the fleet CA issued."""

from __future__ import annotations

import logging

from flotta.pki.errors import PkiError
from flotta.pki.keys import PublicKey
from flotta.pki.store import PkiStore
from flotta.schemas.crd.device import EdgeDevice

logger = logging.getLogger(__name__)


class KeyRing:
    def __init__(self, store: PkiStore) -> None:
        self._store = store
        self._keys: dict[str, PublicKey | None] = {}

    def remember(self, serial: str, key: PublicKey) -> None:
        self._keys[serial] = key

    def for_serial(self, serial: str) -> PublicKey | None:
        if not serial:
            return None
        if serial not in self._keys:
            try:
                cert = self._store.find_issued(int(serial, 16))
            except (ValueError, PkiError) as exc:
                logger.warning("certificate %s cannot be read: %s", serial, exc)
                cert = None
            key = cert.public_key() if cert is not None else None
            self._keys[serial] = key  # type: ignore[assignment]
        return self._keys[serial]

    def for_device(self, device: EdgeDevice) -> PublicKey | None:
        status = device.status
        if status is None or status.certificate is None:
            return None
        return self.for_serial(status.certificate.serial)

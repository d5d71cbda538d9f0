"""Device certificates from the fleet CA: signed in a thread (the key remembered for the
device's serial), and the current one found again when it can be given again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from cryptography import x509

from flotta.operator.device_certificates import certificate_pem, serial_text, worth_giving_again
from flotta.operator.keyring import KeyRing
from flotta.pki.errors import PkiError
from flotta.pki.keys import PublicKey
from flotta.pki.store import PkiStore
from flotta.schemas.crd.device import EdgeDevice


class DeviceSigner:
    def __init__(self, pki: PkiStore, keyring: KeyRing) -> None:
        self._pki = pki
        self._keyring = keyring

    def device_key(self, device: EdgeDevice) -> PublicKey | None:
        """The key of the device's current certificate."""
        return self._keyring.for_device(device)

    def ca_certificate_pem(self) -> str:
        return certificate_pem(self._pki.authority().certificate)

    async def sign(
        self, csr_pem: str, key: PublicKey, *, device_id: str, namespace: str
    ) -> x509.Certificate:
        sign = self._pki.sign_device_csr
        cert: x509.Certificate = await asyncio.to_thread(
            lambda: sign(csr_pem.encode(), device_id=device_id, namespace=namespace)
        )
        self._keyring.remember(serial_text(cert), key)
        return cert

    def current_certificate(self, device: EdgeDevice, key: PublicKey) -> x509.Certificate | None:
        """The device's current certificate when a repeated request can get it again."""
        status = device.status
        if status is None or status.certificate is None or not status.certificate.serial:
            return None
        try:
            cert = self._pki.find_issued(int(status.certificate.serial, 16))
        except (ValueError, PkiError):
            return None
        if cert is None or not worth_giving_again(cert, key, datetime.now(UTC)):
            return None
        return cert

"""Sealing secrets for devices, deterministic and memoised: the same Secret for the same
device key always seals to the same bytes (so the desired state's version is stable), and
is sealed once rather than on every reconcile."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flotta.pki.keys import PublicKey
from flotta.pki.sealing import SealingError, seal
from flotta.schemas.wire.desired import SealedData

DEFAULT_CACHE_ENTRIES = 50_000


class Sealer:
    """``Sealer(key)(device_id, public_key, plaintext)``; ``key`` is the operator's sealing
    secret (it only makes sealing deterministic, it does not protect the data)."""

    def __init__(
        self, deterministic_key: bytes, *, max_entries: int = DEFAULT_CACHE_ENTRIES
    ) -> None:
        self._key = deterministic_key
        self._max_entries = max_entries
        self._cache: OrderedDict[tuple[str, bytes, bytes], SealedData] = OrderedDict()

    def __call__(self, device_id: str, public_key: PublicKey, plaintext: bytes) -> SealedData:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SealingError(f"device {device_id}: secrets can only be sealed for EC keys")
        recipient = public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        cache_key = (device_id, recipient, hashlib.sha256(plaintext).digest())
        cached = self._cache.get(cache_key)
        if cached is not None:
            self._cache.move_to_end(cache_key)
            return cached
        sealed = seal(public_key, plaintext, device_id=device_id, deterministic_key=self._key)
        self._cache[cache_key] = sealed
        if len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return sealed

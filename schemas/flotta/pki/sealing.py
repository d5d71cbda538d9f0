"""Seal bytes for one device so that only the holder of its private key can read them.

ECDH on P-256 with an ephemeral key, HKDF-SHA256, AES-256-GCM with the device id as
associated data. With ``deterministic_key`` (a secret of the operator) the ephemeral key and
the nonce are derived from the inputs, so the same secret for the same device always seals to
the same bytes and the desired state keeps a stable content hash; equal plaintexts for the same
device are then recognisable as equal, nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flotta.schemas.wire.desired import SealedData

_INFO = b"flotta-seal-v1"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class SealingError(ValueError):
    """Sealed data that cannot be opened with this key, or a key that cannot seal."""


def seal(
    public_key: ec.EllipticCurvePublicKey,
    plaintext: bytes,
    *,
    device_id: str,
    deterministic_key: bytes | None = None,
) -> SealedData:
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise SealingError(f"device key is on {public_key.curve.name}, sealing needs P-256")
    recipient = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    if deterministic_key is None:
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        nonce = AESGCM.generate_key(bit_length=128)[:12]
    else:
        digest = hmac.new(
            deterministic_key,
            b"\0".join([_INFO, device_id.encode(), recipient, plaintext]),
            hashlib.sha512,
        ).digest()
        scalar = int.from_bytes(digest[:48], "big") % (_P256_ORDER - 1) + 1
        ephemeral = ec.derive_private_key(scalar, ec.SECP256R1())
        nonce = digest[48:60]
    ephemeral_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key = _derive_key(ephemeral.exchange(ec.ECDH(), public_key), ephemeral_public, device_id)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(device_id))
    return SealedData(
        ephemeral_public_key=_b64(ephemeral_public),
        nonce=_b64(nonce),
        ciphertext=_b64(ciphertext),
    )


def unseal(private_key: ec.EllipticCurvePrivateKey, sealed: SealedData, *, device_id: str) -> bytes:
    try:
        ephemeral_public = base64.b64decode(sealed.ephemeral_public_key, validate=True)
        nonce = base64.b64decode(sealed.nonce, validate=True)
        ciphertext = base64.b64decode(sealed.ciphertext, validate=True)
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral_public)
    except ValueError as exc:
        raise SealingError(f"malformed sealed data: {exc}") from None
    key = _derive_key(private_key.exchange(ec.ECDH(), peer), ephemeral_public, device_id)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, _aad(device_id))
    except (InvalidTag, ValueError):
        raise SealingError(
            f"sealed data cannot be opened: not sealed for device {device_id!r} with this key"
        ) from None


def _derive_key(shared_secret: bytes, ephemeral_public: bytes, device_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_public, info=_INFO + device_id.encode()
    ).derive(shared_secret)


def _aad(device_id: str) -> bytes:
    return _INFO + b":" + device_id.encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

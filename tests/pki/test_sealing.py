import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from flotta.pki.sealing import SealingError, seal, unseal


def test_only_the_device_key_opens_sealed_data() -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    sealed = seal(device_key.public_key(), b"s3cret", device_id="cam-1")
    assert b"s3cret" not in msgspec.json.encode(sealed)
    assert unseal(device_key, sealed, device_id="cam-1") == b"s3cret"
    with pytest.raises(SealingError, match="not sealed for device"):
        unseal(other_key, sealed, device_id="cam-1")
    with pytest.raises(SealingError):
        unseal(device_key, sealed, device_id="cam-2")


def test_deterministic_sealing_gives_the_same_bytes() -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    first = seal(device_key.public_key(), b"x", device_id="d", deterministic_key=b"k" * 32)
    second = seal(device_key.public_key(), b"x", device_id="d", deterministic_key=b"k" * 32)
    third = seal(device_key.public_key(), b"y", device_id="d", deterministic_key=b"k" * 32)
    assert first == second
    assert first.nonce != third.nonce
    assert unseal(device_key, third, device_id="d") == b"y"


def test_random_sealing_differs_each_time() -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    assert seal(device_key.public_key(), b"x", device_id="d") != seal(
        device_key.public_key(), b"x", device_id="d"
    )


def test_malformed_sealed_data_is_a_sealing_error() -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    sealed = seal(device_key.public_key(), b"x", device_id="d")
    broken = msgspec.structs.replace(sealed, ephemeral_public_key="AAAA")
    with pytest.raises(SealingError, match="malformed"):
        unseal(device_key, broken, device_id="d")

"""Encode and decode the device's payloads: pure functions over bytes, the same errors as
:mod:`flotta.schemas.codec` (a valid struct or a :class:`PayloadError`, nothing else)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from flotta.agent.contract.base import SCHEMA_VERSION, Payload
from flotta.schemas.errors import PayloadError, PayloadTooLargeError, SchemaVersionError

P = TypeVar("P", bound=Payload)
S = TypeVar("S", bound=msgspec.Struct)


class _Envelope(msgspec.Struct):
    """Only the schema version; every other field is skipped."""

    schemaVersion: Any = None  # noqa: N815 - the wire name


_encoder = msgspec.json.Encoder()
_envelope = msgspec.json.Decoder(_Envelope)


def encode(payload: Payload) -> bytes:
    """Compact JSON; raises PayloadError when the payload would not pass ``decode`` (structs are
    not checked when built, so every payload is checked here before it leaves the device)."""
    data = _encoder.encode(payload)
    if len(data) > payload.MAX_BYTES:
        raise PayloadTooLargeError(payload.KIND, len(data), payload.MAX_BYTES)
    _parse(type(payload), data, payload.KIND)
    return data


def decode(model: type[P], data: bytes | bytearray | memoryview) -> P:
    raw = bytes(data)
    if len(raw) > model.MAX_BYTES:
        raise PayloadTooLargeError(model.KIND, len(raw), model.MAX_BYTES)
    if not raw:
        raise PayloadError(model.KIND, "empty payload")
    try:
        version = _envelope.decode(raw).schemaVersion
    except msgspec.ValidationError as exc:
        raise PayloadError(model.KIND, f"expected a JSON object: {exc}") from None
    except msgspec.DecodeError as exc:
        raise PayloadError(model.KIND, f"not JSON: {exc}") from None
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise SchemaVersionError(model.KIND, version, SCHEMA_VERSION)
    return _parse(model, raw, model.KIND)


def checked(value: S) -> S:
    """``value`` once it passed the contract's limits (structs are not checked when built);
    raises PayloadError naming the first field that breaks them."""
    return _parse(type(value), _encoder.encode(value), type(value).__name__)


def encode_fragment(value: msgspec.Struct) -> bytes:
    """A fragment (a buffered metric sample or log line) as compact JSON, unchecked."""
    return _encoder.encode(value)


def decode_fragment(model: type[S], data: bytes) -> S:
    return _parse(model, data, model.__name__)


def to_builtins(value: object) -> Any:
    """A struct (or any value of its fields) as JSON-ready builtins, with wire names."""
    return msgspec.to_builtins(value)


def _parse(model: type[S], data: bytes, kind: str) -> S:
    """The one place bytes become a struct: a valid struct or a PayloadError."""
    try:
        return msgspec.json.decode(data, type=model)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PayloadError(kind, str(exc)) from None
    except RecursionError:
        raise PayloadError(kind, "nested too deeply") from None
    except UnicodeDecodeError as exc:  # msgspec lets invalid UTF-8 in strings through as this
        raise PayloadError(kind, f"not UTF-8: {exc.reason} at byte {exc.start}") from None

"""Encode and decode wire payloads: pure functions over bytes, the one codec of the contract
(the agent, the bridge and the operator all use it).

Decoding is strict and total: whatever the bytes, the result is a valid struct or a
:class:`~flotta.schemas.errors.PayloadError`, never another exception.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from flotta.schemas.errors import PayloadError, PayloadTooLargeError, SchemaVersionError
from flotta.schemas.topics import DeviceTopic, EnrolTopic
from flotta.schemas.wire.common import SCHEMA_VERSION, Payload
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.desired import DesiredState
from flotta.schemas.wire.enrolment import (
    CertificateAnswer,
    EnrolmentAnswer,
    EnrolmentRequest,
    RenewalRequest,
)
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch, TelemetryReceipt

P = TypeVar("P", bound=Payload)
S = TypeVar("S", bound=msgspec.Struct)

DEVICE_PAYLOADS: dict[DeviceTopic, type[Payload]] = {
    DeviceTopic.DESIRED: DesiredState,
    DeviceTopic.STATUS: StatusReport,
    DeviceTopic.CONNECTION: ConnectionState,
    DeviceTopic.EVENTS: DeviceEvent,
    DeviceTopic.METRICS: MetricsBatch,
    DeviceTopic.LOGS: LogsBatch,
    DeviceTopic.CSR: RenewalRequest,
    DeviceTopic.CERTIFICATE: CertificateAnswer,
    DeviceTopic.RECEIPTS: TelemetryReceipt,
}

ENROL_PAYLOADS: dict[EnrolTopic, type[Payload]] = {
    EnrolTopic.REQUEST: EnrolmentRequest,
    EnrolTopic.ANSWER: EnrolmentAnswer,
}

# What every encoder of the contract writes first; with it the version needs no second look.
_CANONICAL_START = b'{"schemaVersion":1,'


class _Envelope(msgspec.Struct):
    """Only the schema version; every other field is skipped."""

    schemaVersion: Any = msgspec.UNSET  # noqa: N815 - the wire name


_encoder = msgspec.json.Encoder()
_envelope = msgspec.json.Decoder(_Envelope)
_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}


def encode(payload: Payload) -> bytes:
    """Compact JSON in field order, ``schemaVersion`` first and defaults left out; the same
    struct always gives the same bytes. Raises PayloadError when the payload would not pass
    :func:`decode` (structs are not checked when built, so every payload is checked here
    before it leaves)."""
    data = _encoder.encode(payload)
    if len(data) > payload.MAX_BYTES:
        raise PayloadTooLargeError(payload.KIND, len(data), payload.MAX_BYTES)
    _parse(type(payload), data, payload.KIND)
    return data


def decode(model: type[P], data: bytes | bytearray | memoryview) -> P:
    """Strict: camelCase names only, no type coercion (``"1"`` is no number, a number no
    time), times with a zone and in the years 1970 to 9999 in UTC (normalised to UTC),
    integers within ±(2^53 - 1), finite floats, and JSON nesting within the parser's limit."""
    raw = bytes(data)
    if len(raw) > model.MAX_BYTES:
        raise PayloadTooLargeError(model.KIND, len(raw), model.MAX_BYTES)
    if not raw:
        raise PayloadError(model.KIND, "empty payload")
    if not raw.startswith(_CANONICAL_START):
        _check_version(model.KIND, raw)
    return _parse(model, raw, model.KIND)


def _check_version(kind: str, raw: bytes) -> None:
    try:
        version = _envelope.decode(raw).schemaVersion
    except msgspec.ValidationError:
        found = type(_loose(raw)).__name__
        raise PayloadError(kind, f"expected a JSON object, got {found}") from None
    except msgspec.DecodeError as exc:
        raise PayloadError(kind, f"not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(kind, "nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise PayloadError(kind, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if version is msgspec.UNSET:
        raise SchemaVersionError(kind, None, SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise SchemaVersionError(kind, version, SCHEMA_VERSION)


def _loose(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None


def decode_device_payload(kind: DeviceTopic, data: bytes | bytearray | memoryview) -> Payload:
    return decode(DEVICE_PAYLOADS[kind], data)


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
    """A struct (or any value of its fields) as JSON-ready builtins, with wire names and
    defaults left out."""
    return msgspec.to_builtins(value)


def _decoder(model: type[S]) -> msgspec.json.Decoder[S]:
    decoder = _decoders.get(model)
    if decoder is None:
        decoder = _decoders[model] = msgspec.json.Decoder(model)
    return decoder


def _parse(model: type[S], data: bytes, kind: str) -> S:
    """The one place bytes become a struct: a valid struct or a PayloadError."""
    try:
        return _decoder(model).decode(data)
    except msgspec.ValidationError as exc:
        reason = str(exc)
        if reason.endswith("- at `$.schemaVersion`"):
            _check_version(kind, data)  # another value (a duplicate key): which one, and why
        raise PayloadError(kind, _described(reason)) from None
    except msgspec.DecodeError as exc:
        raise PayloadError(kind, f"not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(kind, "nested too deeply") from None
    except UnicodeDecodeError as exc:  # msgspec lets invalid UTF-8 in strings through as this
        raise PayloadError(kind, f"not UTF-8: {exc.reason} at byte {exc.start}") from None


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_INDEX = re.compile(r"\[(\d+)\]")
_NAMED = re.compile(
    r"^Object (?P<what>missing required|contains unknown) field `(?P<field>[^`]*)`$"
)
_TYPES = {
    "int": "a valid integer",
    "float": "a valid number",
    "str": "a valid string",
    "bool": "a valid boolean",
    "array": "a valid list",
    "object": "a valid object",
    "datetime": "a valid datetime",
    "null": "None",
}
_WORDING = [
    (re.compile(r"^Expected `(?P<type>\w+)`(?:, got `\w+`)?$"), None),
    (
        re.compile(r"^Expected `datetime` with a timezone component$"),
        "Input should have timezone info",
    ),
    (re.compile(r"^Invalid RFC3339 encoded datetime$"), "Input should be a valid datetime"),
    (re.compile(r"^Invalid enum value (?P<value>.*)$"), "Input should be one of the listed values"),
]


def _described(message: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.workloads[0].period``` as
    ``workloads.0.period: Input should be a valid integer``: the field path first, in camelCase
    as the payload spells it, then the problem in the words the contract's messages use."""
    match = _AT.match(message)
    if match is None:  # pragma: no cover - the pattern matches every string
        return message
    text, path = match["message"], _INDEX.sub(r".\1", match["path"] or "").lstrip(".")
    named = _NAMED.match(text)
    if named is not None:
        path = f"{path}.{named['field']}".lstrip(".")
        text = (
            "Field required"
            if named["what"] == "missing required"
            else "Extra inputs are not permitted"
        )
    for pattern, wording in _WORDING:
        found = pattern.match(text)
        if found is None:
            continue
        if wording is None:
            kind = found["type"]
            wording = f"Input should be {_TYPES.get(kind, 'a valid ' + kind)}"
        text = wording if "value" not in pattern.groupindex else f"{wording}: {found['value']}"
        break
    return f"{path or '(root)'}: {text}"


# ---- the desired state's content hash ------------------------------------------------------


def content_version(state: DesiredState) -> str:
    """The content hash that identifies a desired state: SHA-256 over its canonical JSON,
    without the version field itself and the retry token (a retry changes nothing the device
    runs). Defaults are part of the content (only absent optional fields are left out), so the
    hash does not depend on which defaults an encoder omits."""
    document: dict[str, Any] = content_document(state)
    document.pop("version", None)
    document.pop("retry", None)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def with_version(state: DesiredState) -> DesiredState:
    return msgspec.structs.replace(state, version=content_version(state))


def content_document(value: Any) -> Any:
    """``value`` as JSON builtins with wire names and every field that is not None (defaults
    included): what :func:`content_version` hashes, whatever the encoder omits, and the API
    form of a fragment a resource copies (the hardware inventory)."""
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        tag_field = value.__struct_config__.tag_field
        if tag_field is not None:
            out[tag_field] = value.__struct_config__.tag
        for field in msgspec.structs.fields(value):
            item = getattr(value, field.name)
            if item is not None:
                out[field.encode_name] = content_document(item)
        return out
    if isinstance(value, dict):
        return {key: content_document(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [content_document(item) for item in value]
    if isinstance(value, datetime):
        return msgspec.to_builtins(value)
    return value

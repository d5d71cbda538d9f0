"""Encode and decode wire payloads: pure functions over bytes.

Decoding is strict and total: whatever the bytes, the result is a valid model or a
:class:`~flotta.schemas.errors.PayloadError`, never another exception.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from pydantic import ValidationError

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


def encode(payload: Payload) -> bytes:
    """Compact JSON in field order; the same model always gives the same bytes."""
    data = payload.model_dump_json(by_alias=True, exclude_none=True).encode()
    if len(data) > payload.MAX_BYTES:
        raise PayloadTooLargeError(payload.KIND, len(data), payload.MAX_BYTES)
    return data


def decode(model: type[P], data: bytes | bytearray | memoryview) -> P:
    """Strict: camelCase names only, no type coercion (``"1"`` is no number, a number no
    time), times with a zone, the bounds of :mod:`flotta.schemas.scalars`, and JSON nesting
    within the parser's limit."""
    raw = bytes(data)
    if len(raw) > model.MAX_BYTES:
        raise PayloadTooLargeError(model.KIND, len(raw), model.MAX_BYTES)
    if not raw:
        raise PayloadError(model.KIND, "empty payload")
    try:
        payload = model.model_validate_json(raw, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise _rejection(model.KIND, exc) from None
    except (ValueError, RecursionError, OverflowError) as exc:  # a validator's own failure
        raise PayloadError(model.KIND, f"cannot be read: {type(exc).__name__}") from None
    if "schema_version" not in payload.model_fields_set:
        raise SchemaVersionError(model.KIND, None, SCHEMA_VERSION)
    return payload


def _rejection(kind: str, exc: ValidationError) -> PayloadError:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            return PayloadError(kind, f"not JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
        if error["type"] == "model_type":
            return PayloadError(
                kind, f"expected a JSON object, got {type(error['input']).__name__}"
            )
        if error["loc"] == ("schemaVersion",):
            version = None if error["type"] == "missing" else error["input"]
            return SchemaVersionError(kind, version, SCHEMA_VERSION)
    return PayloadError(kind, describe_validation_error(exc))


def decode_device_payload(kind: DeviceTopic, data: bytes | bytearray | memoryview) -> Payload:
    return decode(DEVICE_PAYLOADS[kind], data)


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """One line per problem, with the field path in camelCase as the payload spells it."""
    problems = []
    for error in exc.errors(include_url=False)[:limit]:
        path = ".".join(str(part) for part in error["loc"]) or "(root)"
        problems.append(f"{path}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        problems.append(f"... and {more} more")
    return "; ".join(problems)


def content_version(state: DesiredState) -> str:
    """The content hash that identifies a desired state: SHA-256 over its canonical JSON,
    without the version field itself."""
    document: dict[str, Any] = state.model_dump(by_alias=True, exclude_none=True, mode="json")
    document.pop("version", None)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def with_version(state: DesiredState) -> DesiredState:
    return state.model_copy(update={"version": content_version(state)})

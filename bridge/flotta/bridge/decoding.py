"""Payload decoding on the hot path.

A payload in the form the contract's encoder writes (compact JSON, ``schemaVersion`` first
and only once) is validated as JSON straight into the model by pydantic-core, in strict
mode; that accepts a subset of what the contract's :func:`~flotta.schemas.codec.decode`
accepts and gives the same model. Everything else, and everything it refuses, goes to
``decode``, which has the last word and raises the typed
:class:`~flotta.schemas.errors.PayloadError` subclasses.
"""

from __future__ import annotations

from pydantic import ValidationError

from flotta.schemas.codec import DEVICE_PAYLOADS, decode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.common import SCHEMA_VERSION, Payload

VERSION_KEY = b'"schemaVersion"'
FAST_PREFIX = VERSION_KEY.join((b"{", b":%d," % SCHEMA_VERSION))


def decode_report(kind: DeviceTopic, data: bytes) -> Payload:
    model = DEVICE_PAYLOADS[kind]
    if (
        len(data) <= model.MAX_BYTES
        and data.startswith(FAST_PREFIX)
        and data.count(VERSION_KEY) == 1
    ):
        try:
            return model.model_validate_json(data, strict=True)
        except (ValidationError, ValueError, RecursionError):
            pass
    return decode(model, data)

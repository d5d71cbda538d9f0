"""Payload decoding on the hot path.

Strict JSON validation straight into the model (pydantic-core's parser) accepts a subset of
what the contract's :func:`~flotta.schemas.codec.decode` accepts and gives the same model;
anything it refuses goes to ``decode``, which has the last word and raises the typed
:class:`~flotta.schemas.errors.PayloadError` subclasses.
"""

from __future__ import annotations

from pydantic import ValidationError

from flotta.schemas.codec import DEVICE_PAYLOADS, decode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.common import Payload


def decode_report(kind: DeviceTopic, data: bytes) -> Payload:
    model = DEVICE_PAYLOADS[kind]
    if len(data) <= model.MAX_BYTES:
        try:
            return model.model_validate_json(data, strict=True)
        except (ValidationError, ValueError, RecursionError):
            pass
    return decode(model, data)

"""Payload decoding on the hot path, and the bytes the bridge forwards.

Every report goes through the contract's strict decoder (:func:`~flotta.schemas.codec.decode`,
msgspec structs straight from JSON), so the bridge rejects exactly what the contract rejects,
with the typed :class:`~flotta.schemas.errors.PayloadError` subclasses. A metrics or logs
batch is kept as what the bridge needs of it (its stream and sequence) and its re-encoding.

Nothing is forwarded as the device wrote it: :func:`forwarded` re-encodes the validated value,
so duplicate keys, odd escapes or number spellings never reach a consumer downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

from flotta.schemas.codec import DEVICE_PAYLOADS, decode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.common import Payload
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch, batch_message_id


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated metrics or logs batch: what the bridge needs of it, and its re-encoding."""

    kind: Literal["metrics", "logs"]
    stream: str
    sequence: int
    data: bytes = field(compare=False, repr=False)

    def message_id(self, device_id: str) -> str:
        return batch_message_id(device_id, self.kind, self.stream, self.sequence)


Report = Payload | Batch

_encode = msgspec.json.Encoder().encode


def decode_report(kind: DeviceTopic, data: bytes) -> Report:
    payload = decode(DEVICE_PAYLOADS[kind], data)
    if isinstance(payload, MetricsBatch):
        return Batch("metrics", payload.stream, payload.sequence, _encode(payload))
    if isinstance(payload, LogsBatch):
        return Batch("logs", payload.stream, payload.sequence, _encode(payload))
    return payload


def forwarded(report: Report) -> bytes:
    """The JSON that goes to NATS: the validated value encoded again, never the raw bytes."""
    if isinstance(report, Batch):
        return report.data
    return _encode(report)

"""End-to-end receipts: once JetStream holds a metrics or logs batch, the device is told on
``flotta/devices/{id}/receipts`` and may drop the batch from its buffer. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.common import Payload
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch, TelemetryReceipt


@dataclass(frozen=True, slots=True)
class Receipt:
    topic: str
    payload: bytes


def receipt_for(device_id: str, payload: Payload) -> Receipt | None:
    """The receipt that confirms ``payload`` to its device; None for messages that need none."""
    if isinstance(payload, MetricsBatch):
        kind = "metrics"
    elif isinstance(payload, LogsBatch):
        kind = "logs"
    else:
        return None
    receipt = TelemetryReceipt(kind=kind, stream=payload.stream, sequences=[payload.sequence])
    return Receipt(device_topic(device_id, DeviceTopic.RECEIPTS), encode(receipt))

"""A JetStream message of ``FLOTTA_TELEMETRY`` -> the device batch it carries: pure.

The bridge publishes each batch as a CloudEvents 1.0 envelope (structured JSON mode) on
``flotta.device.{namespace}.{device}.{metrics|logs}``, ``data`` being the validated batch
(docs/contract.md). Decoding is total: whatever the bytes, the result is a
:class:`~flotta.exporter.sink.DeviceBatch` or an :class:`UndeliverableError` naming why, which
the exporter sends to the dead-letter subject instead of crashing on it.
"""

from __future__ import annotations

from typing import Any, Generic

import msgspec

from flotta.exporter.sink import BatchT, DeviceBatch
from flotta.schemas.cloud_events import event_type
from flotta.schemas.errors import TopicError
from flotta.schemas.topics import DeviceTopic, parse_nats_subject
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

KINDS: dict[type[Any], DeviceTopic] = {
    MetricsBatch: DeviceTopic.METRICS,
    LogsBatch: DeviceTopic.LOGS,
}


class UndeliverableError(ValueError):
    """The message can never become a batch (bad subject, not a CloudEvent, invalid data)."""


class _Envelope(msgspec.Struct, Generic[BatchT]):
    """What the exporter reads of the CloudEvent; other attributes are ignored."""

    type: str
    source: str
    data: BatchT
    specversion: str = "1.0"


class EnvelopeDecoder(Generic[BatchT]):
    """Decodes the messages of one kind (``MetricsBatch`` or ``LogsBatch``)."""

    def __init__(self, model: type[BatchT]) -> None:
        self.model: type[BatchT] = model
        self.kind = KINDS[model]
        self.event_type = event_type(self.kind)
        self._decoder: msgspec.json.Decoder[_Envelope[BatchT]] = msgspec.json.Decoder(
            _Envelope[model]  # type: ignore[valid-type]
        )

    def decode(self, subject: str, data: bytes, stream_sequence: int) -> DeviceBatch[BatchT]:
        try:
            parsed = parse_nats_subject(subject)
        except TopicError as exc:
            raise UndeliverableError(str(exc)) from None
        if parsed.kind is not self.kind:
            raise UndeliverableError(f"{subject!r} carries {parsed.kind.value}, not {self.kind}")
        try:
            envelope = self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise UndeliverableError(f"invalid {self.kind} envelope: {exc}") from None
        except msgspec.DecodeError as exc:
            raise UndeliverableError(f"not JSON: {exc}") from None
        except (RecursionError, UnicodeDecodeError, ValueError) as exc:
            raise UndeliverableError(f"invalid {self.kind} envelope: {exc}") from None
        if envelope.specversion != "1.0" or envelope.type != self.event_type:
            raise UndeliverableError(
                f"CloudEvent type {envelope.type!r} (spec {envelope.specversion}), "
                f"expected {self.event_type!r}"
            )
        source = f"/flotta/namespaces/{parsed.namespace}/devices/{parsed.device_id}"
        if envelope.source != source:
            raise UndeliverableError(f"source {envelope.source!r} does not match {subject!r}")
        return DeviceBatch(parsed.namespace, parsed.device_id, stream_sequence, envelope.data)

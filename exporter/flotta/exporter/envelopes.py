"""A JetStream message of ``FLOTTA_TELEMETRY`` -> the device batch it carries: pure.

The bridge publishes each batch as a CloudEvents 1.0 envelope (structured JSON mode) on
``flotta.device.{namespace}.{device}.{metrics|logs}``, ``data`` being the validated batch
(docs/contract.md). Decoding is total: whatever the bytes, the result is a
:class:`~flotta.exporter.sink.DeviceBatch` or an :class:`UndeliverableError` naming why, which
the exporter sends to the dead-letter subject instead of crashing on it.

Metrics batches are read into a lighter struct of the same shape (:class:`_MetricsBatch`):
the bridge checked them against the contract before it published them, and checking every
sample's name pattern and bounds again cost about 3 us a sample, a third of the exporter's
CPU (benchmarks/results/exporter.md). Types are still checked here, and the names Prometheus
requires in :mod:`flotta.exporter.write_requests`; a batch that fails either is dead-lettered.
Logs batches are read with the contract's own struct.
"""

from __future__ import annotations

from typing import Any, Generic, cast

import msgspec

from flotta.exporter.sink import BatchT, DeviceBatch
from flotta.schemas.cloud_events import event_type
from flotta.schemas.errors import TopicError
from flotta.schemas.topics import DeviceTopic, parse_nats_subject
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch, batch_message_id

KINDS: dict[type[Any], DeviceTopic] = {
    MetricsBatch: DeviceTopic.METRICS,
    LogsBatch: DeviceTopic.LOGS,
}


class _MetricSample(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """:class:`~flotta.schemas.wire.telemetry.MetricSample`'s fields, types only."""

    name: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    value: float
    timestamp_ms: int


class _MetricsBatch(
    msgspec.Struct, rename="camel", frozen=True, kw_only=True, tag_field="schemaVersion", tag=1
):
    """:class:`~flotta.schemas.wire.telemetry.MetricsBatch`'s fields, types only."""

    stream: str
    sequence: int
    samples: list[_MetricSample]
    dropped: int = 0

    def message_id(self, device_id: str) -> str:
        return batch_message_id(device_id, "metrics", self.stream, self.sequence)


# What each kind is read into (the same attributes as the contract's struct).
_READ_AS: dict[type[Any], type[Any]] = {MetricsBatch: _MetricsBatch, LogsBatch: LogsBatch}


class UndeliverableError(ValueError):
    """The message can never become a batch (bad subject, not a CloudEvent, invalid data)."""


class _Envelope(msgspec.Struct):
    """What the exporter reads of the CloudEvent; other attributes are ignored."""

    type: str
    source: str
    data: Any
    specversion: str = "1.0"


class EnvelopeDecoder(Generic[BatchT]):
    """Decodes the messages of one kind (``MetricsBatch`` or ``LogsBatch``)."""

    def __init__(self, model: type[BatchT]) -> None:
        self.model: type[BatchT] = model
        self.kind = KINDS[model]
        self.event_type = event_type(self.kind)
        envelope = msgspec.defstruct(
            "Envelope", [("data", _READ_AS[model])], bases=(_Envelope,), kw_only=True
        )
        self._decoder: msgspec.json.Decoder[_Envelope] = msgspec.json.Decoder(envelope)

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
        # _MetricsBatch stands for MetricsBatch: the same attributes, read more cheaply.
        batch = cast(BatchT, envelope.data)
        return DeviceBatch(parsed.namespace, parsed.device_id, stream_sequence, batch)

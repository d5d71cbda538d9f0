"""Telemetry batches and the bridge's receipts (see :mod:`flotta.schemas.wire.telemetry`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.agent.contract.base import KiB, Name, NonNegative, Payload, Time, WireStruct

StreamId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
LabelName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LabelValue = Annotated[str, msgspec.Meta(max_length=1024)]
LogStream = Literal["stdout", "stderr", "system"]
MetricName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
]


class MetricSample(WireStruct, frozen=True, kw_only=True):
    name: MetricName
    labels: Annotated[dict[LabelName, LabelValue], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=dict
    )
    value: float
    timestamp_ms: NonNegative


class MetricsBatch(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "metrics"
    MAX_BYTES: ClassVar[int] = 256 * KiB

    stream: StreamId
    sequence: NonNegative
    samples: Annotated[list[MetricSample], msgspec.Meta(max_length=10000)]
    dropped: NonNegative = 0


class LogLine(WireStruct, frozen=True, kw_only=True):
    workload: Name
    container: Annotated[str, msgspec.Meta(max_length=253)] = ""
    time: Time
    stream: LogStream = "stdout"
    line: Annotated[str, msgspec.Meta(max_length=16 * KiB)]


class LogsBatch(Payload, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "logs"
    MAX_BYTES: ClassVar[int] = 256 * KiB

    stream: StreamId
    sequence: NonNegative
    lines: Annotated[list[LogLine], msgspec.Meta(max_length=10000)]
    dropped: NonNegative = 0


class TelemetryReceipt(Payload, frozen=True, kw_only=True):
    """Batches of one kind and buffer stream that the bridge has stored (kind ``events``: the
    events of one stream)."""

    KIND: ClassVar[str] = "receipt"
    MAX_BYTES: ClassVar[int] = 16 * KiB

    kind: Literal["metrics", "logs", "events"]
    stream: StreamId
    sequences: Annotated[list[NonNegative], msgspec.Meta(min_length=1, max_length=1024)]

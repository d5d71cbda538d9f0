"""``flotta/devices/{id}/metrics`` and ``.../logs``: batches from the device's on-disk buffer;
``flotta/devices/{id}/receipts``: the bridge's confirmation that batches were stored.

``stream`` names the buffer instance (a new one after the device's buffer was wiped) and
``sequence`` counts batches within it, so ``(device, kind, stream, sequence)`` identifies a
batch; a batch sent twice (after a lost acknowledgement) is recognised downstream.

A broker acknowledgement alone does not prove a batch will reach the stream (Mosquitto 2.0
does not restore an offline client's shared subscriptions after a restart, and loses what it
had not saved when it crashes), so the device keeps a batch until a receipt names it and sends
it again when none came in time.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.schemas.wire.common import (
    SAFE_YEARS_FIRST,
    SAFE_YEARS_LAST,
    Count,
    KiB,
    Name,
    Payload,
    Time,
    WireStruct,
    normalise_times,
)

StreamId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
LabelName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LogStream = Literal["stdout", "stderr", "system"]


def batch_message_id(device_id: str, kind: str, stream: str, sequence: int) -> str:
    """``Nats-Msg-Id`` of a metrics or logs batch: the same batch sent twice is stored once."""
    return f"{device_id}:{kind}:{stream}:{sequence}"


class MetricSample(WireStruct, frozen=True, kw_only=True):
    """One sample of one series, in Prometheus' data model."""

    name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    ]
    """The metric name, as Prometheus spells it."""
    labels: Annotated[
        dict[LabelName, Annotated[str, msgspec.Meta(max_length=1024)]], msgspec.Meta(max_length=64)
    ] = msgspec.field(default_factory=dict)
    """The series' labels (``workload`` and ``container`` for workload metrics)."""
    value: float
    """The sample's value (finite: JSON has no NaN or infinity, and a number beyond a double's
    range is refused)."""
    timestamp_ms: Count
    """When it was taken: milliseconds since the Unix epoch, by the device's clock."""


class MetricsBatch(Payload, frozen=True, kw_only=True):
    """Samples from the device's buffer. The device keeps the batch until a receipt (kind
    ``metrics``) names its stream and sequence, and sends it again, unchanged, otherwise."""

    KIND: ClassVar[str] = "metrics"
    MAX_BYTES: ClassVar[int] = 256 * KiB

    stream: StreamId
    """Names the device's buffer (a new one after the buffer was wiped)."""
    sequence: Count
    """The batch's number within ``stream``; with the device and kind it identifies the batch,
    so a copy is stored once."""
    samples: Annotated[list[MetricSample], msgspec.Meta(max_length=10000)]
    """The samples, oldest first."""
    dropped: Count = 0
    """Samples the buffer dropped (full) just before this batch."""

    def message_id(self, device_id: str) -> str:
        return batch_message_id(device_id, "metrics", self.stream, self.sequence)


class LogLine(WireStruct, frozen=True, kw_only=True):
    """One line a workload's container wrote."""

    workload: Name
    """The workload that wrote it."""
    container: Annotated[str, msgspec.Meta(max_length=253)] = ""
    """The container within the workload."""
    time: Time
    """When it was written, by the device's clock."""
    stream: LogStream = "stdout"
    """Where it was written (``system``: the device's own note about the workload)."""
    line: Annotated[str, msgspec.Meta(max_length=16 * KiB)]
    """The text, without the line break."""

    def __post_init__(self) -> None:
        # The common case inline: this runs for every line of every batch the bridge takes.
        time = self.time
        if time.tzinfo is not UTC or not SAFE_YEARS_FIRST <= time.year <= SAFE_YEARS_LAST:
            normalise_times(self, "time")


class LogsBatch(Payload, frozen=True, kw_only=True):
    """Log lines from the device's buffer, confirmed by receipts as metrics batches are."""

    KIND: ClassVar[str] = "logs"
    MAX_BYTES: ClassVar[int] = 256 * KiB

    stream: StreamId
    """Names the device's buffer (a new one after the buffer was wiped)."""
    sequence: Count
    """The batch's number within ``stream``."""
    lines: Annotated[list[LogLine], msgspec.Meta(max_length=10000)]
    """The lines, oldest first."""
    dropped: Count = 0
    """Lines the buffer dropped (full) just before this batch."""

    def message_id(self, device_id: str) -> str:
        return batch_message_id(device_id, "logs", self.stream, self.sequence)


class TelemetryReceipt(Payload, frozen=True, kw_only=True):
    """The bridge's confirmation that JetStream holds (or already held) these batches of one
    kind and buffer stream, or for kind ``events`` these events (their ``stream`` and
    ``sequence``)."""

    KIND: ClassVar[str] = "receipt"
    MAX_BYTES: ClassVar[int] = 16 * KiB

    kind: Literal["metrics", "logs", "events"]
    """What the sequences number: metrics batches, logs batches or events."""
    stream: StreamId
    """The ``stream`` of the batches or events."""
    sequences: Annotated[list[Count], msgspec.Meta(min_length=1, max_length=1024)]
    """The sequences now stored; the device may forget those batches or events."""

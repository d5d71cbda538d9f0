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

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.base import WireModel
from flotta.schemas.scalars import Count, Finite, Time
from flotta.schemas.wire.common import KiB, Payload

StreamId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
LabelName = Annotated[str, Field(min_length=1, max_length=128)]


class MetricSample(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    labels: Annotated[
        dict[LabelName, Annotated[str, Field(max_length=1024)]], Field(max_length=64)
    ] = Field(default_factory=dict)
    value: Finite
    timestamp_ms: Count


class MetricsBatch(Payload):
    KIND: ClassVar[str] = "metrics"
    MAX_BYTES: ClassVar[int] = 256 * KiB

    stream: StreamId
    sequence: Count
    samples: Annotated[list[MetricSample], Field(max_length=10000)]
    dropped: Count = 0

    def message_id(self, device_id: str) -> str:
        return f"{device_id}:metrics:{self.stream}:{self.sequence}"


class LogLine(WireModel):
    workload: Annotated[str, Field(min_length=1, max_length=253)]
    container: Annotated[str, Field(max_length=253)] = ""
    time: Time
    stream: Literal["stdout", "stderr", "system"] = "stdout"
    line: Annotated[str, Field(max_length=16 * KiB)]


class LogsBatch(Payload):
    KIND: ClassVar[str] = "logs"
    MAX_BYTES: ClassVar[int] = 256 * KiB

    stream: StreamId
    sequence: Count
    lines: Annotated[list[LogLine], Field(max_length=10000)]
    dropped: Count = 0

    def message_id(self, device_id: str) -> str:
        return f"{device_id}:logs:{self.stream}:{self.sequence}"


class TelemetryReceipt(Payload):
    """Batches of one kind and buffer stream that JetStream has stored (or already had); for
    kind ``events``, the events of one stream (:class:`~flotta.schemas.wire.events.DeviceEvent`
    ``stream`` and ``sequence``)."""

    KIND: ClassVar[str] = "receipt"
    MAX_BYTES: ClassVar[int] = 16 * KiB

    kind: Literal["metrics", "logs", "events"]
    stream: StreamId
    sequences: Annotated[list[Count], Field(min_length=1, max_length=1024)]

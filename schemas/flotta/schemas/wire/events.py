"""``flotta/devices/{id}/events``: one discrete event (a workload failed, the OS upgraded, ...)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from flotta.schemas.scalars import Count, Time
from flotta.schemas.wire.common import KiB, Payload, ShortText, Text
from flotta.schemas.wire.telemetry import StreamId


class DeviceEvent(Payload):
    KIND: ClassVar[str] = "events"
    MAX_BYTES: ClassVar[int] = 8 * KiB

    id: Annotated[str, Field(min_length=1, max_length=64)]
    time: Time
    type: Literal["Normal", "Warning"] = "Normal"
    reason: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
    message: Text = ""
    workload: ShortText = ""
    # Set by an agent that keeps the event until the bridge's receipt (kind "events") names
    # this stream and sequence; without them the event is sent once.
    stream: StreamId | None = None
    sequence: Count | None = None

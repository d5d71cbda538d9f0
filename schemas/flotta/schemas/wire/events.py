"""``flotta/devices/{id}/events``: one discrete event (a workload failed, the OS upgraded, ...)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.schemas.wire.common import Count, KiB, Payload, ShortText, Text, Time, normalise_times
from flotta.schemas.wire.telemetry import StreamId


class DeviceEvent(Payload, frozen=True, kw_only=True):
    """Something that happened on the device; it becomes a Kubernetes Event of the EdgeDevice
    and a CloudEvent on NATS."""

    KIND: ClassVar[str] = "events"
    MAX_BYTES: ClassVar[int] = 8 * KiB

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """Unique per event on the device; a copy sent again keeps its id."""
    time: Time
    """When it happened, by the device's clock."""
    type: Literal["Normal", "Warning"] = "Normal"
    """As in Kubernetes Events."""
    reason: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    ]
    """A short UpperCamelCase word, as in Kubernetes Events (``WorkloadFailed``)."""
    message: Text = ""
    """What happened, for a person."""
    workload: ShortText = ""
    """The workload it concerns, if any."""
    stream: StreamId | None = None
    """With ``sequence``: the device keeps the event until a receipt of kind ``events`` names
    this stream and sequence, and sends it again otherwise. Absent: sent once, no receipt."""
    sequence: Count | None = None
    """The event's number within ``stream``, counting up from 1."""

    def __post_init__(self) -> None:
        normalise_times(self, "time")

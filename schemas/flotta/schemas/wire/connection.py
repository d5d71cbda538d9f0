"""``flotta/devices/{id}/connection``: the device's birth message, or the will the broker sends."""

from __future__ import annotations

from typing import ClassVar, Literal

from flotta.schemas.wire.common import KiB, Payload, ShortText, Time, normalise_times


class ConnectionState(Payload, frozen=True, kw_only=True):
    """Whether the device is connected. The device publishes ``online`` (retained, QoS 1) right
    after every connect (its birth), ``offline`` before a clean disconnect, and registers an
    ``offline`` message as its MQTT will, which the broker publishes when the connection breaks."""

    KIND: ClassVar[str] = "connection"
    MAX_BYTES: ClassVar[int] = 2 * KiB

    state: Literal["online", "offline"]
    """``online`` in the birth message; ``offline`` in the will and before a clean disconnect."""
    time: Time
    """When the device wrote the message (for the will: when it connected)."""
    applied_version: ShortText = ""
    """The ``version`` of the last desired state the device applied; empty before the first.
    The operator publishes the desired state again when this differs from the current one."""
    agent_version: ShortText = ""
    """The device software's version, free text."""
    reason: ShortText = ""
    """Why the device went offline (``connection lost`` in the will, ``agent stopped``, ...);
    empty when online."""

    def __post_init__(self) -> None:
        normalise_times(self, "time")

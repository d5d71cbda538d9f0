"""``flotta/devices/{id}/connection``: the device's birth message, or the will the broker sends."""

from __future__ import annotations

from typing import ClassVar, Literal

from flotta.schemas.scalars import Time
from flotta.schemas.wire.common import KiB, Payload, ShortText


class ConnectionState(Payload):
    KIND: ClassVar[str] = "connection"
    MAX_BYTES: ClassVar[int] = 2 * KiB

    state: Literal["online", "offline"]
    time: Time
    applied_version: ShortText = ""
    agent_version: ShortText = ""
    reason: ShortText = ""

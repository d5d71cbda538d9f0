"""Device events waiting to be published: a bounded queue that counts what it dropped."""

from __future__ import annotations

import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Literal

from flotta.agent.contract import DeviceEvent


def new_event(
    reason: str,
    message: str,
    *,
    type_: Literal["Normal", "Warning"] = "Normal",
    workload: str = "",
    now: datetime | None = None,
) -> DeviceEvent:
    return DeviceEvent(
        id=uuid.uuid4().hex,
        time=now or datetime.now(UTC),
        type=type_,
        reason=reason,
        message=message[:4096],
        workload=workload[:256],
    )


class EventQueue:
    """Oldest events are dropped first when full (the newest say most about now)."""

    def __init__(self, capacity: int) -> None:
        self._events: deque[DeviceEvent] = deque()
        self.capacity = capacity
        self.dropped = 0

    def put(self, event: DeviceEvent) -> None:
        if len(self._events) >= self.capacity:
            self._events.popleft()
            self.dropped += 1
        self._events.append(event)

    def peek(self) -> DeviceEvent | None:
        return self._events[0] if self._events else None

    def pop(self) -> None:
        if self._events:
            self._events.popleft()

    def __len__(self) -> int:
        return len(self._events)

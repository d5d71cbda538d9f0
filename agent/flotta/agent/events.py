"""Device events waiting to be published and confirmed: a bounded queue that counts what it
dropped."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec

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


@dataclass(slots=True)
class _Waiting:
    event: DeviceEvent
    key: int
    sent_at: float | None = None  # monotonic; None: to be sent


class EventQueue:
    """Events to send, then kept until the bridge's receipt names them (sent again when none
    comes within ``resend_after`` seconds; JetStream drops the copies). Each event gets this
    queue's stream id and the next sequence number. With ``receipts=False`` (a bridge that
    sends none) an event is forgotten once the broker took it, and carries neither. When full,
    the oldest are dropped first (the newest say most about now). Pure: the caller passes
    monotonic time in."""

    def __init__(
        self,
        capacity: int,
        *,
        stream: str | None = None,
        resend_after: float = 60.0,
        window: int = 16,
        receipts: bool = True,
    ) -> None:
        self.capacity = capacity
        self.receipts = receipts
        self.stream = stream or uuid.uuid4().hex[:16]
        self.resend_after = resend_after
        self.window = window  # sent and not yet confirmed, at most
        self.dropped = 0
        self.resent = 0
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._next_sequence = 0

    def put(self, event: DeviceEvent) -> None:
        if len(self._waiting) >= self.capacity:
            self._waiting.popitem(last=False)
            self.dropped += 1
        sequence = self._next_sequence
        self._next_sequence += 1
        if self.receipts:
            event = msgspec.structs.replace(event, stream=self.stream, sequence=sequence)
        self._waiting[sequence] = _Waiting(event, key=sequence)

    def next_to_send(self, now: float) -> DeviceEvent | None:
        """The oldest event not sent yet or whose receipt is overdue, if the window allows."""
        found = self._next(now)
        return found.event if found is not None else None

    def _next(self, now: float) -> _Waiting | None:
        # every event before the one returned was sent and is not overdue: in flight
        for in_flight, waiting in enumerate(self._waiting.values()):
            if waiting.sent_at is None:
                return waiting if in_flight < self.window else None
            if now - waiting.sent_at >= self.resend_after:
                return waiting
        return None

    def sent(self, event: DeviceEvent, now: float) -> None:
        """The broker took ``event`` (the one :meth:`next_to_send` gave): wait for its receipt,
        or without receipts forget it."""
        waiting = next((w for w in self._waiting.values() if w.event is event), None)
        if waiting is None:
            return  # dropped meanwhile
        if not self.receipts:
            del self._waiting[waiting.key]
            return
        if waiting.sent_at is not None:
            self.resent += 1
        waiting.sent_at = now

    def confirm(self, stream: str, sequences: Iterable[int]) -> int:
        """Forget the events a receipt names; how many were still here."""
        if stream != self.stream:
            return 0  # a receipt for an earlier run of the agent
        return sum(1 for s in sequences if self._waiting.pop(s, None) is not None)

    def restart_resend_clocks(self, now: float) -> None:
        """After a reconnect, receipts for what was sent may still be on their way: wait a
        full period again before sending those events again."""
        for waiting in self._waiting.values():
            if waiting.sent_at is not None:
                waiting.sent_at = now

    def next_due(self, now: float) -> float | None:
        """Seconds until an unconfirmed event is due to be sent again (None: none waits)."""
        sent = [w.sent_at for w in self._waiting.values() if w.sent_at is not None]
        return max(0.0, min(sent) + self.resend_after - now) if sent else None

    @property
    def unconfirmed(self) -> int:
        return sum(1 for w in self._waiting.values() if w.sent_at is not None)

    def __len__(self) -> int:
        return len(self._waiting)

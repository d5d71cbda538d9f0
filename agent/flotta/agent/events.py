"""Device events waiting to be published and confirmed: a bounded queue that counts what it
dropped, and tells its journal (if it has one) what it keeps and what it let go."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

import msgspec

from flotta.schemas.wire import DeviceEvent


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


class EventLog(Protocol):
    """Where the queue keeps its events across restarts (:class:`EventJournal`)."""

    def added(self, sequence: int, event: DeviceEvent, next_sequence: int) -> None: ...

    def removed(self, sequences: Iterable[int]) -> None: ...


@dataclass(slots=True)
class _Waiting:
    event: DeviceEvent
    sent_at: float | None = None  # monotonic; None: to be sent


class EventQueue:
    """Events to send, then kept until the bridge's receipt names them (sent again when none
    comes within ``resend_after`` seconds; JetStream drops the copies). Each event gets this
    queue's stream id and the next sequence number. With ``receipts=False`` (a bridge that
    sends none) an event is forgotten once the broker took it, and carries neither. When full,
    the oldest are dropped first (the newest say most about now). Pure: the caller passes
    monotonic time in, and :meth:`resume` hands it a journal to tell."""

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
        self._journal: EventLog | None = None

    def resume(
        self,
        stream: str,
        next_sequence: int,
        saved: Sequence[tuple[int, DeviceEvent]],
        journal: EventLog,
    ) -> None:
        """Carry on from an earlier run: its stream, its numbering and the events it kept
        (oldest first, none sent yet in this run); from now on ``journal`` hears of every
        change. Events put before this are numbered again after the saved ones."""
        earlier = [waiting.event for waiting in self._waiting.values()]
        self._waiting.clear()
        self.stream = stream
        self._next_sequence = next_sequence
        self._journal = journal
        for sequence, event in saved:
            self._waiting[sequence] = _Waiting(event)
            self._next_sequence = max(self._next_sequence, sequence + 1)
        self._drop_oldest(len(self._waiting) - self.capacity)
        for event in earlier:
            self.put(event)

    def detach(self) -> None:
        """Stop telling the journal (it is about to be closed or deleted)."""
        self._journal = None

    def put(self, event: DeviceEvent) -> None:
        self._drop_oldest(len(self._waiting) + 1 - self.capacity)
        sequence = self._next_sequence
        self._next_sequence += 1
        if self.receipts:
            event = msgspec.structs.replace(event, stream=self.stream, sequence=sequence)
        self._waiting[sequence] = _Waiting(event)
        if self._journal is not None:
            self._journal.added(sequence, event, self._next_sequence)

    def _drop_oldest(self, count: int) -> None:
        dropped = [self._waiting.popitem(last=False)[0] for _ in range(max(count, 0))]
        self.dropped += len(dropped)
        self._forget(dropped)

    def _forget(self, keys: list[int]) -> None:
        if keys and self._journal is not None:
            self._journal.removed(keys)

    def next_to_send(self, now: float) -> tuple[int, DeviceEvent] | None:
        """The oldest event not sent yet or whose receipt is overdue, if the window allows, and
        the key to pass to :meth:`sent`."""
        # every event before the one returned was sent and is not overdue: in flight
        for in_flight, (key, waiting) in enumerate(self._waiting.items()):
            if waiting.sent_at is None:
                return (key, waiting.event) if in_flight < self.window else None
            if now - waiting.sent_at >= self.resend_after:
                return key, waiting.event
        return None

    def sent(self, key: int, now: float) -> None:
        """The broker took the event: wait for its receipt, or without receipts forget it."""
        waiting = self._waiting.get(key)
        if waiting is None:
            return  # dropped meanwhile
        if not self.receipts:
            del self._waiting[key]
            self._forget([key])
            return
        if waiting.sent_at is not None:
            self.resent += 1
        waiting.sent_at = now

    def confirm(self, stream: str, sequences: Iterable[int]) -> int:
        """Forget the events a receipt names; how many were still here."""
        if stream != self.stream:
            return 0  # a receipt for another stream (an agent whose journal was lost)
        confirmed = [s for s in sequences if self._waiting.pop(s, None) is not None]
        self._forget(confirmed)
        return len(confirmed)

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

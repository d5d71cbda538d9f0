"""Incoming messages and the bounded inbox between paho's callbacks and the consumer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from paho.mqtt.properties import Properties


def _not_received(message: Message) -> None:
    """The acknowledgement of a message made by hand (a test's): nothing to tell a broker."""


@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """One received message. With ``manual_ack`` call ``ack()`` once it is handled.

    The defaults are for messages made by hand (tests); the client sets every field."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    mid: int = 0
    duplicate: bool = False
    properties: Properties | None = None  # None also when read by the fast receive path
    connection: int = 0  # the connection it arrived on; acks on a later connection are void
    _acker: Callable[[Message], None] = field(default=_not_received, repr=False)

    def ack(self) -> None:
        """Acknowledge to the broker (PUBACK). Idempotent in effect; no-op for QoS 0."""
        self._acker(self)


class Inbox:
    """A bounded FIFO that paho's callback fills without waiting and the consumer drains."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Message] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, message: Message) -> bool:
        """Add a message; False if the inbox is full or closed (the caller counts the drop)."""
        if self._closed or len(self._items) >= self.maxsize:
            return False
        self._items.append(message)
        self._ready.set()
        return True

    async def get(self) -> Message | None:
        """The next message, or None once the inbox is closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def discard(self, predicate: Callable[[Message], bool]) -> int:
        """Remove the waiting messages for which ``predicate`` is true; how many."""
        kept = [message for message in self._items if not predicate(message)]
        removed = len(self._items) - len(kept)
        self._items = deque(kept)
        return removed

    def close(self) -> None:
        self._closed = True
        self._ready.set()

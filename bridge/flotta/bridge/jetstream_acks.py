"""JetStream publish acknowledgements on one wildcard inbox.

Each publish carries a reply subject ``<inbox>.<n>``; JetStream answers there with its
acknowledgement (or an error). One subscription on ``<inbox>.*`` resolves the matching
future, so a publish costs a counter, a dict entry and a future: no random token, no
semaphore, no acknowledgement parsed into an object. At most ``capacity`` acknowledgements
wait at a time; a publish beyond that waits for room.
"""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError, NoStreamResponseError

NO_RESPONDERS = "503"
STATUS_HEADER = "Status"


class AckInbox:
    def __init__(self, nc: NatsClient, *, capacity: int) -> None:
        self._nc = nc
        self.capacity = capacity
        self._prefix = nc.new_inbox() + "."
        self._cut = len(self._prefix)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._room = asyncio.Event()
        self._next = 0
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    @property
    def pending(self) -> int:
        return len(self._waiting)

    async def reply_to(self) -> tuple[str, asyncio.Future[None]]:
        """A reply subject for one publish and the future its acknowledgement resolves."""
        if len(self._waiting) >= self.capacity:
            await self._make_room()
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return self._prefix + token, future

    def forget(self, reply: str) -> None:
        """The publish never left (it failed): drop its entry."""
        future = self._waiting.pop(reply[self._cut :], None)
        if future is not None:
            future.cancel()

    async def _make_room(self) -> None:
        while len(self._waiting) >= self.capacity:
            # futures given up on (cancelled by their owner) leave room at once
            for token in [t for t, f in self._waiting.items() if f.done()]:
                del self._waiting[token]
            if len(self._waiting) < self.capacity:
                return
            self._room.clear()
            await self._room.wait()

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[self._cut :], None)
        if len(self._waiting) < self.capacity:
            self._room.set()
        if future is None or future.done():
            return
        data = msg.data
        if not data and msg.headers and msg.headers.get(STATUS_HEADER) == NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        if b'"error"' in data:
            try:
                answer = json.loads(data)
            except ValueError:
                answer = {"error": {"description": "unreadable acknowledgement"}}
            if isinstance(answer, dict) and "error" in answer:
                future.set_exception(api_error(answer["error"]))
                return
        future.set_result(None)


def api_error(error: object) -> APIError:
    """The nats-py error for JetStream's error answer (``from_error`` raises it)."""
    if not isinstance(error, dict):
        return APIError(description=str(error))
    try:
        APIError.from_error(error)
    except APIError as exc:
        return exc
    except (KeyError, TypeError):
        pass
    return APIError(description=str(error.get("description", error)))

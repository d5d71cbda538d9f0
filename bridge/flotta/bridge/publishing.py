"""NATS JetStream adapter: connect, create or update the streams, publish with
``Nats-Msg-Id``; the publish acknowledgement comes back as a future
(:mod:`flotta.bridge.jetstream_acks`)."""

from __future__ import annotations

import asyncio
import logging
import ssl

from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from flotta.bridge.jetstream_acks import AckInbox
from flotta.bridge.outbound import MSG_ID_HEADER, Outbound
from flotta.bridge.streams import StreamSpec
from flotta.nats_connection import connect, ensure_stream

logger = logging.getLogger(__name__)


class NatsPublisher:
    def __init__(
        self, url: str, *, max_pending: int = 4000, tls: ssl.SSLContext | None = None
    ) -> None:
        self.url = url
        self.tls = tls  # a client certificate, for a NATS that maps it to a user
        self.max_pending = max_pending
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._acks: AckInbox | None = None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect(self) -> None:
        self._nc = await connect(self.url, name="flotta-bridge", tls=self.tls)
        self._js = self._nc.jetstream()
        self._acks = AckInbox(self._nc, capacity=self.max_pending)
        await self._acks.start()

    async def close(self) -> None:
        if self._acks is not None:
            await self._acks.stop()
            self._acks = None
        if self._nc is not None:
            try:
                await self._nc.drain()
            except (NatsError, OSError) as exc:
                # Draining needs a connection: while NATS is away the client would go on
                # reconnecting until it is closed.
                logger.warning("NATS drain failed: %s", exc)
                try:
                    await self._nc.close()
                except OSError as closing:  # nats-py flushes into the lost connection
                    logger.warning("NATS close failed: %s", closing)
            self._nc = None
            self._js = None

    async def ensure_streams(self, specs: tuple[StreamSpec, ...]) -> None:
        """Create each stream, or update it to the spec if it exists."""
        js = self._jetstream()
        for spec in specs:
            config = StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                max_age=spec.max_age,
                max_bytes=spec.max_bytes,
                max_msgs_per_subject=spec.max_msgs_per_subject,
                duplicate_window=spec.duplicate_window,
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
            )
            await ensure_stream(js, config)

    async def publish(self, message: Outbound) -> asyncio.Future[None]:
        """Send to JetStream; the future resolves with the acknowledgement (or fails)."""
        if self._nc is None or self._acks is None:
            raise RuntimeError("NatsPublisher.connect() was not awaited")
        reply, future = await self._acks.reply_to()
        try:
            await self._nc.publish(
                message.subject, message.body, reply, {MSG_ID_HEADER: message.msg_id}
            )
        except BaseException:
            self._acks.forget(reply)
            raise
        return future

    async def publish_core(self, message: Outbound) -> None:
        """Fire and forget (a stream on the subject still stores it)."""
        if self._nc is not None:
            await self._nc.publish(
                message.subject, message.body, headers={MSG_ID_HEADER: message.msg_id}
            )

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NatsPublisher.connect() was not awaited")
        return self._js


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["NatsPublisher", "describe"]

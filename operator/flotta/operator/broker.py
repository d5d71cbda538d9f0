"""The operator's MQTT v5 session: ``flotta.mqtt.MqttClient`` on the operator's event loop.

No network thread: paho's socket is served by the loop, only the TCP + TLS connect runs in a
worker thread (``flotta.mqtt``). Publishes complete through callbacks on the loop (no future
per message); a publish pending when the connection drops completes with a TransportError at
once, and ``connected`` is cleared before that callback runs. Incoming messages are taken from
the client's inbox into a bounded queue; while that queue is full nothing more is taken, so
the broker's in-flight window (Receive Maximum) holds the devices back instead of dropping.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from flotta.mqtt import (
    DisconnectedError,
    MqttClient,
    MqttError,
    MqttSettings,
    TlsFiles,
    settle_future,
)
from flotta.operator.errors import TransportError
from flotta.tasks import TaskSet

logger = logging.getLogger(__name__)

SESSION_EXPIRY = 7 * 24 * 3600
SUBSCRIBE_QOS = 1

Done = Callable[[TransportError | None], None]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    client_id: str = "flotta-operator"
    keepalive: int = 30
    max_inflight: int = 256  # lowered to the broker's Receive Maximum at each connection
    incoming_limit: int = 10_000
    reconnect_base: float = 1.0  # seconds: upper bound of the first reconnect delay
    reconnect_cap: float = 10.0  # seconds: no reconnect delay is longer
    persistent: bool = True  # False: a clean session that ends with the connection

    def mqtt(self) -> MqttSettings:
        """The ``flotta.mqtt`` settings: mutual TLS, a persistent session unless told not."""
        return MqttSettings(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            tls=TlsFiles(ca=self.ca, cert=self.cert, key=self.key),
            keepalive=self.keepalive,
            clean_start=not self.persistent,
            session_expiry=SESSION_EXPIRY if self.persistent else 0,
            max_inflight=self.max_inflight,
            reconnect_base=self.reconnect_base,
            reconnect_cap=self.reconnect_cap,
        )


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


class Broker:
    """One persistent MQTT v5 session. ``on_connected(session_present)`` runs in the event loop
    after every (re)connection, once the subscriptions were (re)sent and acknowledged."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        subscriptions: Sequence[str],
        on_connected: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        self.messages: asyncio.Queue[Message] = asyncio.Queue(settings.incoming_limit)
        self.connected = asyncio.Event()
        self._subscriptions = [(topic, SUBSCRIBE_QOS) for topic in subscriptions]
        self._subscribed = False  # the client re-subscribes by itself after a lost session
        self._on_connected = on_connected
        self._client = MqttClient(
            settings.mqtt(),
            on_connected=self._connected,
            on_disconnected=self._disconnected,
            logger=logger,
        )
        self._tasks = TaskSet("operator-broker", until_stopped=True)

    @property
    def dropped(self) -> int:
        """Incoming messages that did not fit (QoS 0 only: QoS 1 waits at the broker)."""
        return self._client.counters.dropped

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background (retried with back-off until ``stop``)."""
        await self._client.start()
        self._tasks.start("intake", self._take_messages())

    async def stop(self) -> None:
        """Disconnect (the session stays); pending publishes complete with TransportError."""
        self._tasks.quiet()  # closing the client ends the intake
        await self._client.close()
        await self._tasks.stop_all()
        self.connected.clear()

    # ---- publishing ----------------------------------------------------------------------

    def publish_callback(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, done: Done
    ) -> None:
        """Send a message; ``done(None)`` runs in the event loop on the broker's
        acknowledgement (QoS 1), ``done(error)`` when it was refused or the connection dropped
        (before this returns when it could not be sent at all)."""
        self._client.publish_callback(
            topic, payload, qos, retain, done=functools.partial(self._settle, done)
        )

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """``publish_callback`` as a future."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.publish_callback(
            topic, payload, qos=qos, retain=retain, done=functools.partial(settle_future, future)
        )
        return future

    def _settle(self, done: Done, error: MqttError | None) -> None:
        if error is None:
            done(None)
            return
        if isinstance(error, DisconnectedError):
            self.connected.clear()  # before the publisher decides whether to retry
        done(TransportError(str(error)))

    # ---- connection hooks ----------------------------------------------------------------

    async def _connected(self, session_present: bool) -> None:
        # Once: the client subscribes again by itself after every reconnect (with retain
        # handling 1, so a session the broker kept gets no retained birth a second time).
        if not self._subscribed:
            try:
                await self._client.subscribe(self._subscriptions)
                self._subscribed = True
            except DisconnectedError as exc:
                logger.warning("subscribing failed: %s", exc)  # the next connection retries
            except MqttError as exc:
                logger.error("subscribing failed: %s", exc)
        if not self._client.connected:
            return  # lost again; the next connection calls this again
        self.connected.set()
        self._on_connected(session_present)

    async def _disconnected(self, reason: str) -> None:
        self.connected.clear()

    async def _take_messages(self) -> None:
        async for received in self._client.messages():
            await self.messages.put(Message(received.topic, received.payload, received.retain))


def enrolment_broker(fleet: BrokerSettings, *, host: str, port: int) -> BrokerSettings:
    """The operator's connection to the enrolment broker: the same identity, a client id
    nobody can guess and a clean session every time. Bootstrap clients choose their client ids
    there, so a known or persistent id of the operator's could be taken over; requests sent
    while the operator is away are repeated by their devices until answered."""
    return replace(
        fleet,
        host=host,
        port=port,
        client_id=f"{fleet.client_id}-enrolment-{secrets.token_hex(8)}",
        persistent=False,
    )

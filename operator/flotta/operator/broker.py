"""The operator's MQTT v5 connection (paho-mqtt, network thread), bridged into asyncio.

paho runs its network loop in its own thread; every callback hands its result to the event
loop with ``call_soon_threadsafe`` and never touches asyncio objects directly. Publishes are
tracked by message id until the broker's PUBACK (which paho may report before ``publish``
returns: such early acknowledgements are kept until the publisher collects them). Incoming
messages go to a bounded queue; when it is full the message is dropped and counted (devices
announce themselves again on reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from flotta.operator.errors import TransportError

logger = logging.getLogger(__name__)

SESSION_EXPIRY = 7 * 24 * 3600
NO_MATCHING_SUBSCRIBERS = 16


Done = Callable[[TransportError | None], None]


def _refusal(reason: int) -> TransportError | None:
    if reason in (0, NO_MATCHING_SUBSCRIBERS):
        return None
    return TransportError(f"the broker refused a publish (reason {reason})")


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    client_id: str = "flotta-operator"
    keepalive: int = 30
    max_inflight: int = 1000
    incoming_limit: int = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


class Broker:
    """One persistent MQTT v5 session. ``on_connected(session_present)`` runs in the event loop
    after every (re)connection, once the subscriptions were sent."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        subscriptions: Sequence[str],
        on_connected: Callable[[bool], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.settings = settings
        self.messages: asyncio.Queue[Message] = asyncio.Queue(settings.incoming_limit)
        self.dropped = 0
        self.connected = asyncio.Event()
        self._loop = loop
        self._subscriptions = list(subscriptions)
        self._on_connected = on_connected
        self._lock = threading.Lock()
        self._pending: dict[int, Done] = {}
        self._early: dict[int, int] = {}  # mid -> reason code, acknowledged before registered
        self._acked: list[tuple[Done, int]] = []
        self._drain_scheduled = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=True,
        )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca))
        context.load_cert_chain(str(settings.cert), str(settings.key))
        client.tls_set_context(context)
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        self._client = client

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for done in pending:
            done(TransportError("the broker connection was closed"))

    # ---- publishing ----------------------------------------------------------------------

    def publish_callback(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, done: Done
    ) -> None:
        """Send a message; ``done(None)`` runs in the event loop on the broker's
        acknowledgement (QoS 1), ``done(error)`` when it was refused or the connection dropped.
        Acknowledgements are handed over in batches (one loop wake-up for many)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
            done(TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}"))
            return
        if qos == 0:
            done(None)
            return
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = done
        if early is not None:
            done(_refusal(early))

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """``publish_callback`` as a future."""
        future: asyncio.Future[None] = self._loop.create_future()

        def done(error: TransportError | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self.publish_callback(topic, payload, qos=qos, retain=retain, done=done)
        return future

    def _drain_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
            self._drain_scheduled = False
        for done, reason in acked:
            done(_refusal(reason))

    # ---- paho callbacks (network thread) -------------------------------------------------

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        reason = reason_code.value
        with self._lock:
            done = self._pending.pop(mid, None)
            if done is None:
                self._early[mid] = reason
                return
            self._acked.append((done, reason))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        self._loop.call_soon_threadsafe(self._drain_acks)

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.warning("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self._early.clear()
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        logger.info(
            "connected to the broker %s:%s (session present: %s)",
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        self._loop.call_soon_threadsafe(self._connected, flags.session_present)

    def _connected(self, session_present: bool) -> None:
        self.connected.set()
        self._on_connected(session_present)

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        logger.warning("disconnected from the broker: %s", reason_code)
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            self._early.clear()
        self._loop.call_soon_threadsafe(self._disconnected, pending)

    def _disconnected(self, pending: list[Done]) -> None:
        self.connected.clear()
        for done in pending:
            done(TransportError("the broker connection was lost"))

    def _handle_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        item = Message(message.topic, bytes(message.payload), bool(message.retain))
        self._loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: Message) -> None:
        try:
            self.messages.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("incoming queue full: dropped a message on %s", item.topic)

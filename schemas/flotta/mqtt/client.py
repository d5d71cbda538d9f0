"""MqttClient: paho-mqtt (MQTT v5) driven by the asyncio loop.

Only the blocking part of connecting (TCP connect, TLS handshake, sending CONNECT) runs in a
worker thread; paho's socket is then read and written from the loop (``add_reader`` /
``add_writer``) and its keepalive bookkeeping runs on a loop timer. paho's callbacks that may
fire in the worker thread are handed to the loop with ``call_soon_threadsafe``.

Incoming messages are always acknowledged by this client, never by paho on receipt: either when
the consumer takes them from the queue, or (``manual_ack=True``) when the consumer calls
:meth:`MqttClient.ack` after handling them. The broker sends at most ``receive_maximum``
unacknowledged QoS 1 messages, so a queue at least that large never overflows with them; QoS 0
messages that do not fit are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flotta.mqtt.backoff import Backoff
from flotta.mqtt.errors import (
    ConnectError,
    DisconnectedError,
    MqttError,
    PublishError,
    SubscribeError,
)
from flotta.mqtt.settings import MqttSettings

READ_BURST = 256  # packets read per readable event before yielding to the loop
MISC_INTERVAL = 1.0
DISCONNECT_WITH_WILL = 0x04

ConnectedHook = Callable[[bool], Awaitable[None]]
DisconnectedHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    connection: int  # which connection delivered it; an ack on a later one is not sent


@dataclass
class Counters:
    received: int = 0
    dropped: int = 0
    published: int = 0
    publish_failures: int = 0
    connects: int = 0
    connect_failures: int = 0


@dataclass
class _Pending:
    future: asyncio.Future[None]
    topic: str


@dataclass
class _State:
    connection: int = 0
    sock: Any = None
    pending_publishes: dict[int, _Pending] = field(default_factory=dict)
    pending_subscribes: dict[int, tuple[asyncio.Future[None], list[str]]] = field(
        default_factory=dict
    )


class MqttClient:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        on_connected: ConnectedHook | None = None,
        on_disconnected: DisconnectedHook | None = None,
        manual_ack: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.counters = Counters()
        self._on_connected_hook = on_connected
        self._on_disconnected_hook = on_disconnected
        self._manual_ack = manual_ack
        self._log = logger or logging.getLogger("flotta.mqtt")
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=settings.incoming_queue)
        self._subscriptions: dict[str, int] = {}
        self._state = _State()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._connack: asyncio.Future[tuple[ReasonCode, bool]] | None = None
        self._closing = False
        self._last_error = ""
        self._client = self._build_client()

    # ---- public API ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._spawn(self._supervise(), "mqtt-supervisor")
        self._spawn(self._misc_loop(), "mqtt-misc")

    async def connect(self) -> None:
        """Start and wait for the first connection; :class:`ConnectError` if it does not come
        within ``settings.connect_timeout``."""
        await self.start()
        try:
            await asyncio.wait_for(self._connected.wait(), self.settings.connect_timeout)
        except TimeoutError:
            raise ConnectError(self.settings.target, self._last_error or "timed out") from None

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def close(self, *, publish_will: bool = False) -> None:
        """Disconnect (with the will when asked), and stop every task this client started."""
        self._closing = True
        if self._connected.is_set():
            properties = None
            reason = None
            if publish_will:
                reason = ReasonCode(PacketTypes.DISCONNECT, identifier=DISCONNECT_WITH_WILL)
            with contextlib.suppress(Exception):
                self._client.disconnect(reasoncode=reason, properties=properties)
                self._client.loop_write()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._detach_socket()
        self._fail_pending(DisconnectedError("client closed"))
        self._connected.clear()

    async def __aenter__(self) -> MqttClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1) or the write (QoS 0)."""
        if not self._connected.is_set():
            self.counters.publish_failures += 1
            raise DisconnectedError(f"publish to {topic!r}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.counters.publish_failures += 1
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                raise DisconnectedError(f"publish to {topic!r}")
            raise MqttError(f"publish to {topic!r} failed: {paho.error_string(info.rc)}")
        if qos == 0:
            self.counters.published += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._state.pending_publishes[info.mid] = _Pending(future, topic)
        try:
            await future
        except MqttError:
            self.counters.publish_failures += 1
            raise
        finally:
            self._state.pending_publishes.pop(info.mid, None)
        self.counters.published += 1

    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> None:
        """Subscribe and wait for SUBACK; remembered and renewed after a reconnect that lost
        the session."""
        invalid = {
            topic: f"QoS {qos} is not 0, 1 or 2" for topic, qos in filters if qos not in (0, 1, 2)
        }
        if invalid:
            raise SubscribeError(invalid)
        for topic, qos in filters:
            self._subscriptions[topic] = qos
        if not self._connected.is_set():
            raise DisconnectedError("subscribe")
        await self._subscribe_now(list(filters))

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        for topic in topics:
            self._subscriptions.pop(topic, None)
        if self._connected.is_set():
            self._client.unsubscribe(list(topics))

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages, in order. Without ``manual_ack`` each is acknowledged as it is
        taken; with it, call :meth:`ack` once the message has been handled."""
        while True:
            message = await self._queue.get()
            if not self._manual_ack:
                self.ack(message)
            yield message

    def ack(self, message: Message) -> None:
        if message.qos == 0 or message.connection != self._state.connection:
            return  # the broker redelivers it on the new connection
        if self._state.sock is not None:
            self._client.ack(message.mid, message.qos)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # ---- connection supervision -----------------------------------------------------------

    def _build_client(self) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        client.max_inflight_messages_set(self.settings.max_inflight)
        client.max_queued_messages_set(self.settings.max_inflight * 10)
        if self.settings.tls is not None:
            client.tls_set_context(self.settings.tls.context())
        will = self.settings.will
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    async def _supervise(self) -> None:
        backoff = Backoff(self.settings.reconnect_base, self.settings.reconnect_cap)
        while not self._closing:
            try:
                session_present = await self._connect_once()
            except ConnectError as exc:
                self.counters.connect_failures += 1
                self._last_error = exc.reason
                delay = backoff.next_delay()
                self._log.warning("%s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            await self._after_connect(session_present)
            await self._lost.wait()
            if self._on_disconnected_hook is not None and not self._closing:
                await self._run_hook(self._on_disconnected_hook(self._last_error))
            await asyncio.sleep(backoff.next_delay())

    async def _connect_once(self) -> bool:
        loop = asyncio.get_running_loop()
        self._lost.clear()
        self._connack = loop.create_future()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.settings.session_expiry
        properties.ReceiveMaximum = self.settings.receive_maximum
        try:
            await asyncio.wait_for(
                loop.run_in_executor(None, self._blocking_connect, properties),
                self.settings.connect_timeout,
            )
        except (OSError, ssl.SSLError, ValueError, TimeoutError) as exc:
            self._detach_socket()
            raise ConnectError(self.settings.target, _describe(exc)) from None
        self._on_readable()
        try:
            reason, session_present = await asyncio.wait_for(
                self._connack, self.settings.connect_timeout
            )
        except TimeoutError:
            self._client.disconnect()
            self._detach_socket()
            raise ConnectError(self.settings.target, "no CONNACK from the broker") from None
        if reason.is_failure:
            self._detach_socket()
            raise ConnectError(self.settings.target, f"refused by the broker: {reason}")
        return session_present

    def _blocking_connect(self, properties: Properties) -> None:
        self._client.connect(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=self.settings.clean_start,
            properties=properties,
        )

    async def _after_connect(self, session_present: bool) -> None:
        self.counters.connects += 1
        self._connected.set()
        self._log.info(
            "MQTT connected to %s as %s (session present: %s)",
            self.settings.target,
            self.settings.client_id,
            session_present,
        )
        if self._subscriptions and not session_present:
            with contextlib.suppress(MqttError):
                await self._subscribe_now(list(self._subscriptions.items()))
        if self._on_connected_hook is not None:
            await self._run_hook(self._on_connected_hook(session_present))

    async def _run_hook(self, hook: Awaitable[None]) -> None:
        try:
            await hook
        except MqttError as exc:
            self._log.warning("MQTT connection hook failed: %s", exc)
        except Exception:
            self._log.exception("MQTT connection hook failed")

    async def _subscribe_now(self, filters: list[tuple[str, int]]) -> None:
        result, mid = self._client.subscribe(
            [(topic, SubscribeOptions(qos=qos)) for topic, qos in filters]
        )
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise DisconnectedError("subscribe")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._state.pending_subscribes[mid] = (future, [topic for topic, _ in filters])
        try:
            await future
        finally:
            self._state.pending_subscribes.pop(mid, None)

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(MISC_INTERVAL)
            if self._state.sock is not None:
                self._client.loop_misc()

    def _fail_pending(self, error: MqttError) -> None:
        for pending in self._state.pending_publishes.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        for future, _ in self._state.pending_subscribes.values():
            if not future.done():
                future.set_exception(error)

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("MQTT task %s failed", task.get_name(), exc_info=task.exception())

    # ---- paho callbacks ---------------------------------------------------------------------

    def _in_loop(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            function(*args)
        else:
            loop.call_soon_threadsafe(function, *args)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._attach_socket, sock)

    def _attach_socket(self, sock: Any) -> None:
        assert self._loop is not None
        self._state.sock = sock
        self._loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._detach_socket, sock)

    def _detach_socket(self, sock: Any = None) -> None:
        sock = sock if sock is not None else self._state.sock
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
        if self._state.sock is sock:
            self._state.sock = None

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._add_writer, sock)

    def _add_writer(self, sock: Any) -> None:
        if self._loop is not None and sock.fileno() >= 0:
            self._loop.add_writer(sock, self._client.loop_write)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer, sock)

    def _remove_writer(self, sock: Any) -> None:
        if self._loop is not None and sock.fileno() >= 0:
            self._loop.remove_writer(sock)

    def _on_readable(self) -> None:
        for _ in range(READ_BURST):
            sock = self._state.sock
            if sock is None:
                return
            if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            sock = self._state.sock
            if sock is None:
                return
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                continue
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._in_loop(self._connack_received, reason, bool(flags.session_present))

    def _connack_received(self, reason: ReasonCode, session_present: bool) -> None:
        if not reason.is_failure:
            self._state.connection += 1  # before any message of this connection is read
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((reason, session_present))

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._in_loop(self._connection_lost, str(reason))

    def _connection_lost(self, reason: str) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._last_error = reason
        self._detach_socket()
        self._fail_pending(DisconnectedError(f"connection lost ({reason})"))
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectError(self.settings.target, reason))
        if was_connected and not self._closing:
            self._log.warning("MQTT connection to %s lost: %s", self.settings.target, reason)
        self._lost.set()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        pending = self._state.pending_publishes.get(mid)
        if pending is None or pending.future.done():
            return
        if reason.is_failure:
            pending.future.set_exception(PublishError(pending.topic, str(reason)))
        else:
            pending.future.set_result(None)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        entry = self._state.pending_subscribes.get(mid)
        if entry is None or entry[0].done():
            return
        future, topics = entry
        refused = {
            topic: str(reason)
            for topic, reason in zip(topics, reasons, strict=False)
            if reason.is_failure
        }
        if refused:
            future.set_exception(SubscribeError(refused))
        else:
            future.set_result(None)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.counters.received += 1
        item = Message(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            mid=message.mid,
            connection=self._state.connection,
        )
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.counters.dropped += 1
            self._log.warning(
                "MQTT incoming queue full (%d): dropped a message on %s",
                self._queue.maxsize,
                message.topic,
            )
            if message.qos > 0:
                client.ack(message.mid, message.qos)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__

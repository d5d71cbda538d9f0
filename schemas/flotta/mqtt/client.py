"""The asyncio MQTT v5 client: paho-mqtt driven by the event loop, no network thread.

paho's socket is served by the loop (``flotta.mqtt.looping``) and ``loop_misc`` runs on a
timer task. The TCP connect and the TLS handshake run on the loop too (``flotta.mqtt.tls_connect``),
and paho is handed the connected socket: every paho call and callback happens on the loop
thread. What this needs of paho beyond its public API is in ``flotta.mqtt.paho_internals``.

The fast receive path (``fast_receive=True``, for a process that takes thousands of messages a
second, such as the bridge) reads QoS 0 and 1 PUBLISH packets itself
(``flotta.mqtt.publish_parsing``) instead of letting paho build a message object, decode the
properties and walk its topic matcher (their ``Message.properties`` is None), and reads many
packets per turn of the loop (``flotta.mqtt.looping``). With ``on_message``
messages are handed to that callback as they are read, instead of waiting in the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flotta.backoff import Backoff
from flotta.mqtt.errors import (
    ConnectError,
    DisconnectedError,
    MqttError,
    PublishError,
    SubscribeError,
)
from flotta.mqtt.looping import READ_BURST, SocketBridge, disable_nagle
from flotta.mqtt.messages import Inbox, Message
from flotta.mqtt.paho_internals import (
    WindowedClient,
    close_socket,
    install_lazy_message_info,
    install_shared_table_properties,
    renew_tls_context,
    set_inflight_window,
)
from flotta.mqtt.publish_parsing import read_publish
from flotta.mqtt.settings import MqttSettings
from flotta.mqtt.tls_connect import open_socket
from flotta.mqtt.tls_context import TlsContextCache
from flotta.tasks import TaskSet

DISCONNECT_WITH_WILL = 0x04
OnConnected = Callable[[bool], Awaitable[None]]
OnDisconnected = Callable[[str], Awaitable[None]]
OnMessage = Callable[[Message], None]
PublishDone = Callable[[MqttError | None], None]
Payload = bytes | bytearray | str


@dataclass(slots=True)
class MqttCounters:
    received: int = 0
    connects: int = 0  # successful connections, the first included
    dropped: int = 0  # did not fit in the inbox (logged)
    published: int = 0  # acknowledged by the broker (QoS>0) or written (QoS 0)
    publish_failures: int = 0  # refused by the broker or lost with the connection
    reconnects: int = 0  # successful connections after the first
    connect_failures: int = 0
    stale_acks: int = 0  # acks for messages of a connection that is gone (void)
    discarded_redelivered: int = 0  # unacked messages dropped because the broker resends them


class RetainHandling(IntEnum):
    """When a subscription gets the retained messages (MQTT 5, 3.8.3.1)."""

    SEND = 0  # on every subscribe
    SEND_IF_NEW = 1  # only for a subscription the broker did not have
    DO_NOT_SEND = 2  # never


def _reason_text(reason: ReasonCode) -> str:
    return str(reason.getName())


class MqttClient:
    """One MQTT v5 connection with a persistent session, supervised reconnects and a bounded
    inbox; messages are acked as taken, or with ``manual_ack=True`` by the consumer once
    handled. Use as ``async with MqttClient(...)``."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        on_connected: OnConnected | None = None,
        on_disconnected: OnDisconnected | None = None,
        manual_ack: bool = False,
        logger: logging.Logger | None = None,
        backoff: Backoff | None = None,
        connect_slots: asyncio.Semaphore | None = None,
        on_message: OnMessage | None = None,
        fast_receive: bool = False,
    ) -> None:
        """``connect_slots``: shared by many clients of one process, it bounds how many open
        connections at once (TCP connect and TLS handshake); without it, thousands reconnecting
        together overflow the broker's listen queue, and the kernel resends a dropped SYN only
        after 1, 3, 7 ... seconds.

        ``on_message``: called on the loop thread with each message as it is read, instead of
        queueing it for ``messages()`` (it must not block; exceptions are logged). With
        ``manual_ack`` the consumer bounds what it holds by ``receive_maximum``.

        ``fast_receive``: QoS 0 and 1 messages are read without paho's message object and
        their properties are not decoded (``Message.properties`` is None); a readable socket
        gets up to ``READ_BURST`` packets read in one turn of the loop."""
        self.settings = settings
        self._on_message = on_message
        self._fast_receive = fast_receive
        self._connect_slots = connect_slots
        self.counters = MqttCounters()
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._manual_ack = manual_ack
        self._log = logger or logging.getLogger("flotta.mqtt")
        self._backoff = backoff or Backoff(settings.backoff_policy())
        self._inbox = Inbox(settings.incoming_queue)
        self._paho = self._make_paho()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = TaskSet(f"mqtt[{settings.client_id}]")
        self._publishes: dict[int, tuple[PublishDone, str]] = {}  # mid -> (done, topic)
        self._subscribes: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        # filter -> options, subscribed again after every reconnect
        self._subscriptions: dict[str, SubscribeOptions] = {}
        self._connack: asyncio.Future[bool] | None = None
        self._lost = asyncio.Event()
        self._up = asyncio.Event()
        self._lost_reason = ""
        self._connected = False
        self._connecting = False
        self._closing = False
        self._generation = 0
        self._unacked: set[int] = set()  # mids of QoS>0 messages delivered on this connection
        self._last_error = ""
        self._tls_configured = False
        self._tls = TlsContextCache(settings.tls) if settings.tls is not None else None
        self._acker = self._ack  # one bound method for every message

    # ---- public API -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def publishes_in_flight(self) -> int:
        """Publishes waiting for their acknowledgement."""
        return len(self._publishes)

    @property
    def queue_depth(self) -> int:
        """Messages waiting in the inbox."""
        return len(self._inbox)

    async def connect(self) -> None:
        """Connect once (raises ConnectError), then keep reconnecting in the background."""
        self._start()
        try:
            session_present = await self._connect_once()
        except BaseException:
            await self.close()
            raise
        self._spawn(self._supervise(session_present), "mqtt-supervisor")

    async def start(self) -> None:
        """Like ``connect()``, but never raises: the first attempt is retried with backoff."""
        self._start()
        self._spawn(self._supervise(None), "mqtt-supervisor")

    async def wait_connected(self) -> None:
        await self._up.wait()

    async def close(self, *, publish_will: bool = False) -> None:
        """Send DISCONNECT (the session and its subscriptions stay), stop every task.

        ``publish_will``: ask the broker to publish the will anyway (reason code 0x04).
        """
        if self._closing:
            return
        self._closing = True
        if self._connected:
            reason = None
            if publish_will:
                reason = ReasonCode(PacketTypes.DISCONNECT, identifier=DISCONNECT_WITH_WILL)
            self._paho.disconnect(reasoncode=reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.close_timeout):
                    await self._lost.wait()
        self._tasks.quiet()
        await self._tasks.stop_all()
        self._drop_socket("client closed")
        self._inbox.close()

    async def __aenter__(self) -> MqttClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def publish(
        self,
        topic: str,
        payload: Payload,
        qos: int = 1,
        retain: bool = False,
        *,
        properties: Properties | None = None,
    ) -> None:
        """Publish; returns once the broker acknowledged (QoS 1/2) or it was queued (QoS 0)."""
        mid = self._send_publish(topic, payload, qos, retain, properties)
        if mid is None:
            return
        future: asyncio.Future[None] = self._running_loop().create_future()
        entry = (functools.partial(settle_future, future), topic)
        self._publishes[mid] = entry
        try:
            await future
        finally:
            if self._publishes.get(mid) is entry:  # cancelled before the answer
                del self._publishes[mid]

    def publish_callback(
        self,
        topic: str,
        payload: Payload,
        qos: int = 1,
        retain: bool = False,
        *,
        done: PublishDone,
        properties: Properties | None = None,
    ) -> None:
        """Publish without a future: ``done`` runs exactly once, on the loop thread.

        ``done(None)`` on the broker's acknowledgement (QoS 1/2) or once queued (QoS 0);
        ``done(PublishError)`` when it was refused, ``done(DisconnectedError)`` when the
        connection dropped first (or there was none). A publish that cannot be sent at all
        settles before this returns. Exceptions raised by ``done`` are logged, not raised.
        """
        try:
            mid = self._send_publish(topic, payload, qos, retain, properties)
        except MqttError as exc:
            self._call_done(done, exc)
            return
        if mid is None:
            self._call_done(done, None)
            return
        self._publishes[mid] = (done, topic)

    def _send_publish(
        self,
        topic: str,
        payload: Payload,
        qos: int,
        retain: bool,
        properties: Properties | None,
    ) -> int | None:
        """Hand a message to paho: its mid when an acknowledgement is due, None for QoS 0.

        Raises DisconnectedError or PublishError (both counted as failures).
        """
        if not self._connected:
            self.counters.publish_failures += 1
            raise DisconnectedError(f"publish to {topic!r}", self._lost_reason)
        try:
            info = self._paho.publish(topic, payload, qos, retain, properties)
        except (ValueError, TypeError) as exc:
            self.counters.publish_failures += 1
            raise PublishError(topic, str(exc)) from exc
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.counters.publish_failures += 1
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                raise DisconnectedError(f"publish to {topic!r}")
            raise PublishError(topic, paho.error_string(info.rc))
        if qos == 0:
            self.counters.published += 1
            return None
        return info.mid

    def _call_done(self, done: PublishDone, error: MqttError | None) -> None:
        try:
            done(error)
        except Exception:
            self._log.exception("MQTT %s: publish callback failed", self.settings.client_id)

    async def subscribe(
        self,
        subscriptions: Sequence[tuple[str, int]],
        *,
        retain_handling: RetainHandling = RetainHandling.SEND_IF_NEW,
        retain_as_published: bool = False,
        keep: bool = True,
    ) -> list[int]:
        """Subscribe and wait for SUBACK; the granted QoS per filter.

        With ``keep``, accepted filters are remembered and subscribed again (with the same
        options) after every reconnect, also to a session the broker kept (someone may have
        taken it over and unsubscribed); without it the caller subscribes again itself, in
        ``on_connected``. ``retain_handling``: when retained messages come (by default only
        for a subscription the broker did not have). ``retain_as_published``: the retain flag
        as the publisher set it, not only on retained messages sent for the subscription.
        Raises SubscribeError if any filter was refused.
        """
        bad_qos = [
            (f, f"QoS {qos} is not 0, 1 or 2", None)
            for f, qos in subscriptions
            if qos not in (0, 1, 2)
        ]
        if bad_qos:
            raise SubscribeError(bad_qos)
        retain_handling = RetainHandling(retain_handling)  # ValueError for anything else
        request = [
            (
                topic_filter,
                SubscribeOptions(
                    qos=qos,
                    retainAsPublished=retain_as_published,
                    retainHandling=int(retain_handling),
                ),
            )
            for topic_filter, qos in subscriptions
        ]
        return await self._subscribe(request, keep=keep)

    async def _subscribe(
        self, request: Sequence[tuple[str, SubscribeOptions]], *, keep: bool
    ) -> list[int]:
        codes = await self._send_subscribe(request)
        refused: list[tuple[str, str, int | None]] = []
        granted: list[int] = []
        for (topic_filter, options), code in zip(request, codes, strict=True):
            if code.is_failure:
                refused.append((topic_filter, _reason_text(code), code.value))
            else:
                if keep:
                    self._subscriptions[topic_filter] = options
                granted.append(code.value)
        if refused:
            raise SubscribeError(refused)
        return granted

    async def unsubscribe(self, topic_filters: Sequence[str]) -> None:
        """Forget filters (no wait for UNSUBACK: the broker always accepts)."""
        for topic_filter in topic_filters:
            self._subscriptions.pop(topic_filter, None)
        if not self._connected:
            raise DisconnectedError("unsubscribe", self._lost_reason)
        rc, _ = self._paho.unsubscribe(list(topic_filters))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise DisconnectedError("unsubscribe", paho.error_string(rc))

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages until the client is closed.

        Without ``manual_ack`` each is acknowledged as it is taken; with it, call
        ``message.ack()`` (or ``client.ack(message)``) once it has been handled. Not with
        ``on_message``, which takes every message.
        """
        if self._on_message is not None:
            raise MqttError("this client hands its messages to on_message")
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            if not self._manual_ack:
                self.ack(message)
            yield message

    def ack(self, message: Message) -> None:
        """Acknowledge a handled message (PUBACK); void for QoS 0, repeats, old connections."""
        self._ack(message)

    # ---- paho setup ---------------------------------------------------------------------

    def _make_paho(self) -> WindowedClient:
        settings = self.settings
        install_shared_table_properties()
        install_lazy_message_info()
        client = WindowedClient(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)
        client.connect_timeout = settings.connect_timeout
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.will is not None:
            will = settings.will
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        client.on_connect = self._handle_connack
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_puback
        client.on_subscribe = self._handle_suback
        client.on_message = self._handle_message
        if self._fast_receive:
            client.take_publish = self._take_publish
        client.enable_logger(self._paho_logger())
        client.log_only(frozenset({paho.MQTT_LOG_ERR}))  # all that the logger keeps
        return client

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.settings.session_expiry
        properties.ReceiveMaximum = self.settings.receive_maximum
        return properties

    def _start(self) -> None:
        if self._loop is not None:
            raise MqttError("this client was already started; make a new one")
        self._loop = asyncio.get_running_loop()
        burst = READ_BURST if self._fast_receive else 1
        SocketBridge(self._paho, self._loop, read_burst=burst).attach()
        self._spawn(self._housekeeping(), "mqtt-housekeeping")

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise MqttError("the client is not started")
        return self._loop

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._running_loop()  # raises when the client is not started
        self._tasks.start(name, coro)

    # ---- connecting -----------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext | None:
        """The current TLS context, handed to paho too (it must know the socket is TLS)."""
        if self._tls is None:
            return None
        context = self._tls.context()
        if self._tls_configured:
            # paho allows tls_set_context once; a renewed certificate needs a new context.
            renew_tls_context(self._paho, context)
        else:
            self._paho.tls_set_context(context)
            self._tls_configured = True
        return context

    async def _open_and_send_connect(self) -> None:
        """TCP connect and TLS handshake on the loop, then paho takes the socket and queues
        CONNECT."""
        settings = self.settings
        try:
            context = self._tls_context()
        except (OSError, ValueError) as exc:
            raise ConnectError(settings.host, settings.port, f"TLS setup: {exc}") from exc
        slot = self._connect_slots or contextlib.nullcontext()
        try:
            async with slot:
                sock = await open_socket(settings.host, settings.port, context)
        except (OSError, ValueError) as exc:
            raise ConnectError(settings.host, settings.port, _describe(exc)) from exc
        disable_nagle(sock)
        self._paho.use_socket(sock)
        try:
            self._paho.connect(
                settings.host,
                settings.port,
                keepalive=settings.keepalive,
                clean_start=settings.clean_start,
                properties=self._connect_properties(),
            )
        except BaseException:
            self._paho.use_socket(None)  # not taken if paho failed before it opened a socket
            sock.close()
            raise

    async def _connect_once(self) -> bool:
        """One attempt; whether the broker had our session. Raises ConnectError."""
        try:
            return await self._attempt()
        except ConnectError:
            self.counters.connect_failures += 1
            raise

    async def _attempt(self) -> bool:
        settings = self.settings
        loop = self._running_loop()
        self._last_error = ""
        self._lost.clear()
        self._connack = loop.create_future()
        self._connecting = True
        waiting_for = "the TCP connect and TLS handshake"
        try:
            try:
                async with asyncio.timeout(settings.connect_timeout):
                    await self._open_and_send_connect()
                    waiting_for = "the CONNACK"
                    return await self._connack
            except TimeoutError:
                raise ConnectError(
                    settings.host,
                    settings.port,
                    f"{waiting_for} took longer than {settings.connect_timeout} s",
                ) from None
        finally:
            self._connecting = False
            self._connack = None
            if not self._connected:
                self._drop_socket("connection attempt failed")

    async def _supervise(self, session_present: bool | None) -> None:
        """Keep the connection: after each loss, wait (jittered backoff) and reconnect."""
        connected = session_present is not None
        if session_present is not None:
            await self._after_connect(session_present)
        first_attempt = not connected
        while not self._closing:
            if connected:
                await self._lost.wait()
                if self._closing:
                    return
                self._backoff.on_disconnected(time.monotonic())
                await self._call_hook("on_disconnected", self._on_disconnected, self._lost_reason)
            delay = 0.0 if first_attempt else self._backoff.next_delay()
            first_attempt = False
            if delay > 0:
                self._log.info("MQTT %s: reconnecting in %.2f s", self.settings.client_id, delay)
                await asyncio.sleep(delay)
            try:
                present = await self._connect_once()
            except ConnectError as exc:
                self._log.warning("MQTT %s: %s", self.settings.client_id, exc)
                connected = False
                continue
            if self._generation > 1:
                self.counters.reconnects += 1
            connected = True
            await self._after_connect(present)

    async def _after_connect(self, session_present: bool) -> None:
        self._backoff.on_connected(time.monotonic())
        if session_present:
            # The broker resends every unacked message of the old connection; drop the copies
            # still waiting here so that each is handled once (and acked on this connection).
            stale = self._inbox.discard(lambda m: m.qos > 0 and m.connection != self._generation)
            self.counters.discarded_redelivered += stale
        if self._subscriptions:
            # Also with a session present: whoever connected with this client id meanwhile
            # could have unsubscribed it. Subscriptions that are still there get no retained
            # messages again (retain handling 1), so this costs one SUBSCRIBE, not a flood.
            wanted = sorted(self._subscriptions.items())
            try:
                await self._subscribe(wanted, keep=True)
            except MqttError as exc:
                self._log.error("MQTT %s: resubscribing failed: %s", self.settings.client_id, exc)
        await self._call_hook("on_connected", self._on_connected, session_present)

    async def _call_hook(
        self, name: str, hook: Callable[[Any], Awaitable[None]] | None, argument: object
    ) -> None:
        if hook is None:
            return
        try:
            await hook(argument)
        except Exception:
            self._log.exception("MQTT %s: %s hook failed", self.settings.client_id, name)

    async def _housekeeping(self) -> None:
        """paho's timer work: keepalive pings, keepalive timeout, retries."""
        while True:
            await asyncio.sleep(self.settings.misc_interval)
            if not self._connecting and self._paho.socket() is not None:
                self._paho.loop_misc()

    def _drop_socket(self, reason: str) -> None:
        """Close paho's socket without a DISCONNECT packet and settle what waited on it."""
        if self._paho.socket() is not None:
            close_socket(self._paho)
        if self._connected or self._connack is not None:
            self._connection_lost(reason)

    # ---- paho callbacks (loop thread) -----------------------------------------------------

    def _handle_connack(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        connack = self._connack
        if reason.is_failure:
            error = ConnectError(
                self.settings.host, self.settings.port, _reason_text(reason), reason.value
            )
            if connack is not None and not connack.done():
                connack.set_exception(error)
            return
        if properties is not None and hasattr(properties, "ReceiveMaximum"):
            # paho ignores the broker's Receive Maximum and its setter refuses an open
            # connection; CONNACK precedes every publish, so setting the limit here is safe.
            set_inflight_window(
                client, min(self.settings.max_inflight, int(properties.ReceiveMaximum))
            )
        self._connected = True
        self._up.set()
        self.counters.connects += 1
        self._generation += 1
        self._unacked.clear()
        self._lost_reason = ""
        self._log.info(
            "MQTT %s connected to %s:%d (session present: %s)",
            self.settings.client_id,
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        if connack is not None and not connack.done():
            connack.set_result(bool(flags.session_present))

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        text = _reason_text(reason)
        if self._last_error and reason.is_failure:
            text = f"{text}: {self._last_error}"
        self._connection_lost(text)

    def _connection_lost(self, reason: str) -> None:
        was_connected = self._connected
        self._connected = False
        self._up.clear()
        self._lost_reason = reason or "connection closed"
        connack = self._connack
        if connack is not None and not connack.done():
            connack.set_exception(
                ConnectError(
                    self.settings.host,
                    self.settings.port,
                    f"connection closed before CONNACK: {self._lost_reason}",
                )
            )
        publishes = list(self._publishes.values())
        self._publishes.clear()
        for done, topic in publishes:
            self.counters.publish_failures += 1
            self._call_done(done, DisconnectedError(f"publish to {topic!r}", self._lost_reason))
        for waiter in self._subscribes.values():
            if not waiter.done():
                waiter.set_exception(DisconnectedError("subscribe", self._lost_reason))
        if was_connected:
            self._log.log(
                logging.INFO if self._closing else logging.WARNING,
                "MQTT %s disconnected: %s",
                self.settings.client_id,
                self._lost_reason,
            )
        self._lost.set()

    def _handle_puback(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        entry = self._publishes.pop(mid, None)
        if entry is None:
            return  # a publish of a connection that is gone, or whose waiter was cancelled
        done, topic = entry
        if reason.is_failure:
            self.counters.publish_failures += 1
            self._call_done(done, PublishError(topic, _reason_text(reason), reason.value))
        else:
            self.counters.published += 1
            self._call_done(done, None)

    def _handle_suback(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        future = self._subscribes.get(mid)
        if future is not None and not future.done():
            future.set_result(list(reasons))

    def _handle_message(self, client: paho.Client, userdata: object, raw: paho.MQTTMessage) -> None:
        self._deliver(
            Message(
                topic=raw.topic,
                payload=bytes(raw.payload),
                qos=raw.qos,
                retain=bool(raw.retain),
                mid=raw.mid,
                duplicate=bool(raw.dup),
                properties=getattr(raw, "properties", None),
                connection=self._generation,
                _acker=self._acker,
            )
        )

    def _take_publish(self, command: int, packet: bytearray) -> bool:
        """The fast receive path: a QoS 0/1 PUBLISH read here; False leaves it to paho."""
        fields = read_publish(command, packet)
        if fields is None:
            return False
        topic, payload, qos, retain, mid, duplicate = fields
        generation = self._generation
        self._deliver(
            Message(topic, payload, qos, retain, mid, duplicate, None, generation, self._acker)
        )
        return True

    def _deliver(self, message: Message) -> None:
        self.counters.received += 1
        if message.qos > 0:
            self._unacked.add(message.mid)
        on_message = self._on_message
        if on_message is not None:
            try:
                on_message(message)
            except Exception:
                self._log.exception(
                    "MQTT %s: on_message failed for a message on %r (not acked)",
                    self.settings.client_id,
                    message.topic,
                )
            return
        if not self._inbox.offer(message):
            self.counters.dropped += 1
            self._log.warning(
                "MQTT %s: inbox full (%d), dropped message on %r (QoS %d, not acked)",
                self.settings.client_id,
                self._inbox.maxsize,
                message.topic,
                message.qos,
            )

    def _ack(self, message: Message) -> None:
        if message.qos == 0:
            return
        if message.connection != self._generation or not self._connected:
            self.counters.stale_acks += 1
            return
        if message.mid not in self._unacked:
            return  # acked before: a second PUBACK could ack a newer message with this mid
        self._unacked.discard(message.mid)
        self._paho.ack(message.mid, message.qos)

    def _paho_logger(self) -> logging.Logger:
        """A private logger for paho that only keeps its last error (debug lines cost nothing)."""
        logger = logging.Logger(f"flotta.mqtt.paho[{self.settings.client_id}]", logging.ERROR)
        logger.addHandler(_LastError(self))
        return logger

    def _paho_error(self, text: str) -> None:
        self._last_error = text
        self._log.debug("paho %s: %s", self.settings.client_id, text)

    async def _send_subscribe(
        self, request: Sequence[tuple[str, SubscribeOptions]]
    ) -> list[ReasonCode]:
        if not request:
            raise ValueError("subscribe needs at least one (filter, qos)")
        if not self._connected:
            raise DisconnectedError("subscribe", self._lost_reason)
        try:
            rc, mid = self._paho.subscribe(list(request))
        except ValueError as exc:
            raise SubscribeError([(f, str(exc), None) for f, _ in request]) from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise DisconnectedError("subscribe", paho.error_string(rc))
        future: asyncio.Future[list[ReasonCode]] = self._running_loop().create_future()
        self._subscribes[mid] = future
        try:
            return await future
        finally:
            self._subscribes.pop(mid, None)


class _LastError(logging.Handler):
    def __init__(self, client: MqttClient) -> None:
        super().__init__(logging.ERROR)
        self._client = client

    def emit(self, record: logging.LogRecord) -> None:
        self._client._paho_error(record.getMessage())


def settle_future(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve a publish's future from a ``done`` callback (once; a cancelled one stays so)."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"server certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__

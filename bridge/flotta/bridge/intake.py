"""MQTT intake: paho-mqtt (MQTT v5) driven by the asyncio loop, no network thread.

The bridge subscribes with shared subscriptions on a persistent session (clean start off,
session expiry), QoS 1 and manual acknowledgement: a message is acknowledged by
:meth:`MqttIntake.ack` only once it was handled. The broker sends at most
``receive_maximum`` unacknowledged messages, which bounds what the bridge holds.

paho's socket callbacks hand the socket to the loop (``add_reader``/``add_writer``); only
the blocking connect (TCP + TLS handshake) runs in a worker thread. Incoming PUBLISH packets
are read by :func:`~flotta.bridge.publishread.read_publish` (paho's own handling builds a
message object with a lock, parses properties and walks a topic matcher for each); whatever
that reader does not take goes through paho as before.
"""

from __future__ import annotations

import asyncio
import logging
import random
import select
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flotta.bridge.publishread import read_publish
from flotta.mqtt.looping import disable_nagle
from flotta.mqtt.pahoproperties import install as install_shared_table_properties

logger = logging.getLogger(__name__)

READ_BURST = 256  # packets read per readable event before yielding to the loop
MISC_INTERVAL = 1.0  # keepalive and retry bookkeeping


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    client_id: str
    filters: tuple[str, ...]
    keepalive: int = 30
    session_expiry: int = 24 * 3600
    receive_maximum: int = 1000
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    tls: bool = True


@dataclass(frozen=True, slots=True)
class Delivery:
    mid: int
    qos: int
    topic: str
    payload: bytes
    connection: int = 0  # which connection of the session delivered it
    retain: bool = False  # published retained (the subscriptions ask for retain as published)


class _IntakeClient(mqtt.Client):
    """paho with its PUBLISH handling cut short for the packets the bridge takes."""

    deliver: Callable[[str, int, int, bytes, bool], None] | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        deliver = self.deliver
        if deliver is not None:
            packet = read_publish(self._in_packet["command"], self._in_packet["packet"])
            if packet is not None:
                deliver(packet.topic, packet.mid, packet.qos, packet.payload, packet.retain)
                return MQTTErrorCode.MQTT_ERR_SUCCESS  # acknowledged by MqttIntake.ack
        return super()._handle_publish()


class MqttIntake:
    """One MQTT v5 session that delivers messages to ``on_message`` (called in the loop)."""

    def __init__(
        self,
        settings: MqttSettings,
        on_message: Callable[[Delivery], None],
        on_link: Callable[[bool], None] | None = None,
    ) -> None:
        """``on_link(True)`` once subscribed (devices can be heard), ``on_link(False)`` when the
        connection is lost; both in the loop."""
        self.settings = settings
        self._on_message = on_message
        self._on_link = on_link
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client = self._build_client()
        self._closing = False
        self._subscribed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sock: Any = None
        self.connects = 0
        self.session_present = False

    @property
    def ready(self) -> bool:
        return self._subscribed.is_set()

    async def wait_ready(self) -> None:
        await self._subscribed.wait()

    def _build_client(self) -> mqtt.Client:
        install_shared_table_properties()
        client = _IntakeClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.settings.tls:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.settings.ca)
            context.load_cert_chain(self.settings.cert, self.settings.key)
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_paho_message
        client.deliver = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._spawn(self._misc_loop(), "mqtt-misc")
        self._spawn(self._connect_loop(first=True), "mqtt-connect")

    async def close(self) -> None:
        self._closing = True
        self._subscribed.clear()
        if self._client.is_connected():
            self._client.disconnect()
            self._client.loop_write()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._drop_socket()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_loop(self, *, first: bool) -> None:
        loop = asyncio.get_running_loop()
        delay = self.settings.reconnect_min
        while not self._closing:
            try:
                if first:
                    await loop.run_in_executor(None, self._connect)
                else:
                    await loop.run_in_executor(None, self._client.reconnect)
                return
            except (OSError, ssl.SSLError, ValueError) as exc:
                first = first and not self._client.is_connected()
                logger.warning(
                    "MQTT connect to %s:%s failed: %s; retrying in %.1f s",
                    self.settings.host,
                    self.settings.port,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311
                delay = min(delay * 2, self.settings.reconnect_max)

    def _connect(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.settings.session_expiry
        properties.ReceiveMaximum = self.settings.receive_maximum
        self._client.connect(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=False,
            properties=properties,
        )

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(MISC_INTERVAL)
            if self._sock is not None:
                self._client.loop_misc()

    # ---- acknowledgement ----------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a handled message (call in the loop).

        A message delivered on an earlier connection is not acknowledged: the broker has
        redelivered it on the current one (with a packet id that may since name another
        message), and that copy is acknowledged when it has been handled.
        """
        if delivery.qos > 0 and self._sock is not None and delivery.connection == self.connects:
            self._client.ack(delivery.mid, delivery.qos)

    # ---- paho callbacks (all run in the loop thread, except the socket ones on connect) ------

    def _in_loop(self, function: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            function(*args)
        else:
            loop.call_soon_threadsafe(function, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._attach, sock)

    def _attach(self, sock: Any) -> None:
        assert self._loop is not None
        self._sock = sock
        disable_nagle(sock)
        self._loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._detach, sock)

    def _detach(self, sock: Any) -> None:
        if self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if self._sock is sock:
            self._sock = None

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._detach(self._sock)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._add_writer, sock)

    def _add_writer(self, sock: Any) -> None:
        if self._loop is not None and sock.fileno() >= 0:
            self._loop.add_writer(sock, self._client.loop_write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer, sock)

    def _remove_writer(self, sock: Any) -> None:
        if self._loop is not None and sock.fileno() >= 0:
            self._loop.remove_writer(sock)

    def _on_readable(self) -> None:
        client = self._client
        for _ in range(READ_BURST):
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            sock = self._sock
            if sock is None:
                return
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                continue
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            logger.error("MQTT broker refused the bridge: %s", reason)
            return
        self.connects += 1
        self.session_present = bool(flags.session_present)
        logger.info(
            "MQTT connected to %s:%s (session present: %s)",
            self.settings.host,
            self.settings.port,
            self.session_present,
        )
        # Mosquitto 2.0 keeps no shared subscription over its own restart, so every connect
        # subscribes again; and it sends a shared subscription the retained messages, against
        # MQTT 5 (4.8.2): every device's retained birth or will, 10,000 after a broker restart.
        # The bridge takes device state from the EdgeDevices, so it asks for none.
        # Retain as published: a device that leaves a retained message on a report topic is
        # seen doing so, and the bridge clears it (observers must not get it on subscribing).
        options = SubscribeOptions(
            qos=1, retainAsPublished=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
        )
        client.subscribe([(topic, options) for topic in self.settings.filters])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            logger.error("MQTT subscriptions refused: %s", ", ".join(refused))
            return
        self._subscribed.set()
        if self._on_link is not None:
            self._in_loop(self._on_link, True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed.clear()
        if self._closing:
            return
        if self._on_link is not None:
            self._in_loop(self._on_link, False)
        logger.warning("MQTT connection lost (%s); reconnecting", reason)
        self._in_loop(self._spawn, self._connect_loop(first=False), "mqtt-reconnect")

    def _on_publish(self, topic: str, mid: int, qos: int, payload: bytes, retain: bool) -> None:
        self._on_message(Delivery(mid, qos, topic, payload, self.connects, retain))

    def _on_paho_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        self._on_message(
            Delivery(
                message.mid, message.qos, message.topic, payload, self.connects, message.retain
            )
        )

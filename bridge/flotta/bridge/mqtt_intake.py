"""MQTT intake: the bridge's MQTT v5 session, a ``flotta.mqtt`` client on its fast receive path.

The bridge subscribes with shared subscriptions on a persistent session (clean start off,
session expiry), QoS 1 and manual acknowledgement: a message is acknowledged by
:meth:`MqttIntake.ack` only once it was handled. The broker sends at most
``receive_maximum`` unacknowledged messages, which bounds what the bridge holds.

Everything MQTT is :class:`flotta.mqtt.MqttClient`'s: paho served by the event loop, the TCP
connect and TLS handshake on the loop, reconnects with jittered backoff, acknowledgements that
are void on a later connection. The bridge uses two of its options: ``fast_receive`` (QoS 0/1
PUBLISH packets are read without paho's message object, lock, properties or topic-matcher walk)
and ``on_message`` (each message goes to the ingest path as it is read, no inbox between).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flotta.mqtt import (
    DisconnectedError,
    Message,
    MqttClient,
    RetainHandling,
    SubscribeError,
    TlsFiles,
)
from flotta.mqtt import MqttSettings as ClientSettings

logger = logging.getLogger(__name__)

# What the ingest path takes: a flotta.mqtt message (read without its properties).
Delivery = Message


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


def client_settings(settings: MqttSettings) -> ClientSettings:
    """The ``flotta.mqtt`` settings of the intake's session."""
    return ClientSettings(
        host=settings.host,
        port=settings.port,
        client_id=settings.client_id,
        tls=TlsFiles(settings.ca, settings.cert, settings.key) if settings.tls else None,
        keepalive=settings.keepalive,
        clean_start=False,
        session_expiry=settings.session_expiry,
        receive_maximum=settings.receive_maximum,
        incoming_queue=settings.receive_maximum,  # unused: messages go to on_message
        reconnect_base=settings.reconnect_min,
        reconnect_cap=settings.reconnect_max,
    )


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
        self._on_link = on_link
        self._subscribed = asyncio.Event()
        self.session_present = False
        self._client = MqttClient(
            client_settings(settings),
            on_connected=self._connected,
            on_disconnected=self._disconnected,
            manual_ack=True,
            logger=logger,
            on_message=on_message,
            fast_receive=True,
        )

    @property
    def ready(self) -> bool:
        return self._subscribed.is_set()

    @property
    def connects(self) -> int:
        """Successful connections, the first included."""
        return self._client.counters.connects

    async def wait_ready(self) -> None:
        await self._subscribed.wait()

    async def start(self) -> None:
        """Connect in the background (retried with backoff until it works)."""
        await self._client.start()

    async def close(self) -> None:
        self._subscribed.clear()
        await self._client.close()

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a handled message (call in the loop).

        A message delivered on an earlier connection is not acknowledged: the broker has
        redelivered it on the current one (with a packet id that may since name another
        message), and that copy is acknowledged when it has been handled.
        """
        self._client.ack(delivery)

    async def _connected(self, session_present: bool) -> None:
        self.session_present = session_present
        # Mosquitto 2.0 keeps no shared subscription over its own restart, so every connect
        # subscribes again; and it sends a shared subscription the retained messages, against
        # MQTT 5 (4.8.2): every device's retained birth or will, 10,000 after a broker restart.
        # The bridge takes device state from the EdgeDevices, so it asks for none.
        # Retain as published: a device that leaves a retained message on a report topic is
        # seen doing so, and the bridge clears it (observers must not get it on subscribing).
        try:
            await self._client.subscribe(
                [(topic, 1) for topic in self.settings.filters],
                retain_handling=RetainHandling.DO_NOT_SEND,
                retain_as_published=True,
                keep=False,
            )
        except SubscribeError as exc:
            logger.error("MQTT subscriptions refused: %s", exc)
            return
        except DisconnectedError:
            return  # lost again: the next connection subscribes
        self._subscribed.set()
        if self._on_link is not None:
            self._on_link(True)

    async def _disconnected(self, reason: str) -> None:
        self._subscribed.clear()
        if self._on_link is not None:
            self._on_link(False)

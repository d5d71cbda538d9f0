"""End-to-end receipts: once JetStream holds a metrics or logs batch, or an event that names
its stream and sequence, the device is told on ``flotta/devices/{id}/receipts`` and may drop it
from its buffer.

Receipts go out on an MQTT connection of their own: publishing on the ingest session would
tie its flow control (the broker's in-flight window towards the bridge) to outgoing traffic,
and Mosquitto 2.0 then overran the window (measured: the ingest queue overflowed and stalled).
A receipt that finds the queue full or the broker gone is dropped and counted; the device
sends that batch again and JetStream drops the copy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec
from prometheus_client import Counter

from flotta.bridge.decoding import Batch, Report
from flotta.mqtt import MqttClient, MqttError
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.common import SCHEMA_VERSION
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

logger = logging.getLogger(__name__)

_RECEIPT_HEAD = b'{"schemaVersion":%d,"kind":"' % SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Receipt:
    topic: str
    payload: bytes
    retain: bool = False  # an empty retained payload clears a retained message


def retained_clear(topic: str) -> Receipt:
    """What clears a retained message a device left on one of its report topics."""
    return Receipt(topic, b"", retain=True)


def receipt_for(device_id: str, payload: Report) -> Receipt | None:
    """The receipt that confirms ``payload`` to its device; None for messages that need none.
    The bytes are those :func:`~flotta.schemas.codec.encode` gives for the
    :class:`TelemetryReceipt`, built directly (this runs for every batch)."""
    if isinstance(payload, Batch):
        return _receipt(device_id, payload.kind.encode(), payload.stream, payload.sequence)
    if isinstance(payload, MetricsBatch):
        return _receipt(device_id, b"metrics", payload.stream, payload.sequence)
    if isinstance(payload, LogsBatch):
        return _receipt(device_id, b"logs", payload.stream, payload.sequence)
    if isinstance(payload, DeviceEvent) and payload.stream is not None:
        if payload.sequence is None:
            return None  # the contract wants both; an event with one of them is sent once
        return _receipt(device_id, b"events", payload.stream, payload.sequence)
    return None


def _receipt(device_id: str, kind: bytes, stream: str, sequence: int) -> Receipt:
    body = b"".join(
        (
            _RECEIPT_HEAD,
            kind,
            b'","stream":',
            msgspec.json.encode(stream),
            b',"sequences":[',
            b"%d" % sequence,
            b"]}",
        )
    )
    return Receipt(device_topic(device_id, DeviceTopic.RECEIPTS), body)


class ReceiptSender:
    """A bounded queue of receipts and ``workers`` tasks publishing them at QoS 1."""

    def __init__(
        self,
        client: MqttClient,
        counter: Counter,
        *,
        capacity: int = 20_000,
        workers: int = 32,
    ) -> None:
        self.client = client
        self.workers = workers
        self._queue: asyncio.Queue[Receipt] = asyncio.Queue(maxsize=capacity)
        self._sent = counter.labels("sent")
        self._failed = counter.labels("failed")
        self._dropped = counter.labels("dropped")
        self.failures = 0

    def offer(self, receipt: Receipt) -> bool:
        """Queue a receipt (call in the loop); False when the queue is full."""
        try:
            self._queue.put_nowait(receipt)
        except asyncio.QueueFull:
            self._dropped.inc()
            return False
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """Connect and publish until cancelled."""
        await self.client.start()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.workers):
                    group.create_task(self._work())
        finally:
            await self.client.close()

    async def _work(self) -> None:
        while True:
            receipt = await self._queue.get()
            try:
                await self.client.publish(
                    receipt.topic, receipt.payload, qos=1, retain=receipt.retain
                )
            except MqttError as exc:
                self._failed.inc()
                self.failures += 1
                if self.failures % 1000 == 1:
                    logger.warning(
                        "receipt to %s not sent (%s); the device resends", receipt.topic, exc
                    )
            else:
                self._sent.inc()

"""Sending buffered batches, the oldest of each kind first. With a :class:`Flow` a batch the
broker acknowledged waits in the buffer for the bridge's receipt (and is sent again when none
comes in time); without one it is removed as soon as ``publish`` returned."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flotta.agent.telemetry.batching import Kind
from flotta.agent.telemetry.buffer import Flow, TelemetryBuffer
from flotta.agent.telemetry.errors import BufferStoreError
from flotta.backoff import Backoff
from flotta.schemas.topics import DeviceTopic, device_topic

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]
TOPICS = {Kind.METRICS: DeviceTopic.METRICS, Kind.LOGS: DeviceTopic.LOGS}


@dataclass(slots=True)
class SenderCounters:
    batches_sent: int = 0
    batches_resent: int = 0
    records_sent: int = 0
    failures: int = 0
    last_success: float = 0.0


async def send_forever(
    buffer: TelemetryBuffer,
    publish: Publish,
    *,
    device_id: str,
    wake: asyncio.Event,
    backoff: Backoff,
    counters: SenderCounters,
    resume: asyncio.Event | None = None,
    flow: Flow | None = None,
    reconnected: asyncio.Event | None = None,
    idle_check: float = 5.0,
) -> None:
    """Send until cancelled. ``wake`` says new records are buffered (or a receipt freed the
    window); ``resume`` (the connection is back) cuts a back-off short; ``reconnected`` makes
    the batches awaiting receipts wait a full resend period again before anything is sent."""
    resume = resume or asyncio.Event()
    reconnected = reconnected or asyncio.Event()
    topics = {kind: device_topic(device_id, topic) for kind, topic in TOPICS.items()}
    while True:
        if reconnected.is_set() and flow is not None:
            reconnected.clear()
            try:
                await asyncio.to_thread(buffer.restart_resend_clocks)
            except BufferStoreError as exc:
                log.error("telemetry: %s", exc)
        wake.clear()
        sent_any = False
        failed = False
        for kind in Kind:
            try:
                batch = await asyncio.to_thread(buffer.next_batch, kind, flow)
            except BufferStoreError as exc:
                log.error("telemetry: cannot read a batch: %s", exc)
                failed = True
                break
            if batch is None:
                continue
            try:
                await publish(topics[kind], batch.payload)
            except Exception as exc:  # any failure means "not acknowledged": keep the batch
                counters.failures += 1
                log.info("telemetry: %s batch %d not sent: %s", kind, batch.sequence, exc)
                failed = True
                break
            settle = buffer.acknowledge if flow is None else buffer.mark_sent
            try:
                await asyncio.to_thread(settle, kind, batch.sequence)
            except BufferStoreError as exc:  # sent again later; the bridge de-duplicates
                log.error("telemetry: cannot record batch %d as sent: %s", batch.sequence, exc)
                failed = True
                break
            if batch.resend:
                counters.batches_resent += 1
                log.info("telemetry: %s batch %d sent again (no receipt)", kind, batch.sequence)
            counters.batches_sent += 1
            counters.records_sent += batch.records
            counters.last_success = time.time()
            sent_any = True
            backoff.reset()
        if failed:
            resume.clear()
            await _wait(resume, backoff.next_delay())
        elif not sent_any:
            await _wait(wake, idle_check)


async def _wait(event: asyncio.Event, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await event.wait()
    except TimeoutError:
        pass

"""Kubernetes writers: the coalesced EdgeDevice status writer and the Event recorder. Both
run blocking client calls in a small thread pool, never more at once than they have workers,
fed from bounded queues."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flotta.bridge.coalescer import WriteKind
from flotta.bridge.device_status import DeviceContext
from flotta.bridge.errors import KubeWriteError
from flotta.bridge.event_limit import EventDecision, EventLimiter
from flotta.bridge.fleet_state import Fleet, PlannedWrite
from flotta.bridge.kube import KubeEvent, KubeWriter
from flotta.bridge.metrics import BridgeMetrics
from flotta.rate_limit import TokenBucket
from flotta.schemas.wire.events import DeviceEvent

logger = logging.getLogger(__name__)

IDLE_POLL = 0.05  # seconds between looks at the coalescer when nothing is due
HTTP_NOT_FOUND = 404


class StatusWriter:
    def __init__(
        self,
        *,
        fleet: Fleet,
        writer: KubeWriter,
        executor: ThreadPoolExecutor,
        workers: int,
        metrics: BridgeMetrics,
    ) -> None:
        self.fleet = fleet
        self.writer = writer
        self.executor = executor
        self.workers = workers
        self.metrics = metrics
        self._free = workers
        self._refreshing = 0
        self._wake = asyncio.Event()
        self._log_budget = TokenBucket(rate=1, burst=5, now=time.monotonic())
        self.written = 0
        self.failed = 0

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        writes = self.fleet.writes
        pending = self.metrics.queue_depth.labels("status-writes")
        changes = self.metrics.queue_depth.labels("status-changes")
        while True:
            mono = time.monotonic()
            if self._free > 0:
                # One worker always stays free for visible changes.
                refresh_limit = max(0, self.workers - 1 - self._refreshing)
                for device_id, kind in writes.take(mono, self._free, refresh_limit):
                    planned = self.fleet.plan(device_id)
                    if planned is None:
                        writes.finished(device_id)
                        continue
                    self._free -= 1
                    if kind is WriteKind.REFRESH:
                        self._refreshing += 1
                    future = loop.run_in_executor(self.executor, self._write, planned)
                    future.add_done_callback(functools.partial(self._finished, planned, kind))
            pending.set(writes.pending)
            changes.set(writes.pending_changes)
            wait = writes.wait_time(time.monotonic())
            delay = IDLE_POLL if wait is None or self._free == 0 else min(max(wait, 0.001), 1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _write(self, planned: PlannedWrite) -> None:
        started = time.perf_counter()
        try:
            self.writer.patch_status(planned.namespace, planned.device_id, planned.patch)
        finally:
            self.metrics.kube_write_latency.observe(time.perf_counter() - started)

    def _finished(self, planned: PlannedWrite, kind: WriteKind, done: asyncio.Future[None]) -> None:
        self._free += 1
        if kind is WriteKind.REFRESH:
            self._refreshing -= 1
        self.fleet.writes.finished(planned.device_id)
        error = done.exception() if not done.cancelled() else None
        if error is None and not done.cancelled():
            self.written += 1
            self.fleet.written(planned)
            self.metrics.kube_writes.labels(kind.value, "ok").inc()
        else:
            self.failed += 1
            self.metrics.kube_writes.labels(kind.value, "failed").inc()
            if isinstance(error, KubeWriteError) and error.status == HTTP_NOT_FOUND:
                self.fleet.deleted(planned.device_id)
            else:
                self.fleet.failed(planned, time.monotonic())
            if self._log_budget.try_take(time.monotonic()):
                logger.warning("status write for %s failed: %s", planned.device_id, error)
        self._wake.set()


@dataclass(frozen=True, slots=True)
class _QueuedEvent:
    context: DeviceContext
    event: KubeEvent


class EventRecorder:
    """Device events -> Kubernetes Events on the EdgeDevice, de-duplicated and rate-limited."""

    def __init__(
        self,
        *,
        writer: KubeWriter,
        executor: ThreadPoolExecutor,
        limiter: EventLimiter,
        metrics: BridgeMetrics,
        capacity: int = 1000,
    ) -> None:
        self.writer = writer
        self.executor = executor
        self.limiter = limiter
        self.metrics = metrics
        self._queue: deque[_QueuedEvent] = deque()
        self.capacity = capacity
        self._wake = asyncio.Event()

    def offer(self, context: DeviceContext, event: DeviceEvent) -> None:
        decision = self.limiter.decide(context.name, event.id, time.monotonic())
        if decision is not EventDecision.RECORD:
            self.metrics.kube_events.labels(decision.value).inc()
            return
        if len(self._queue) >= self.capacity:
            self.metrics.kube_events.labels("dropped").inc()
            return
        info = KubeEvent(event.id, event.type, event.reason, _message(event), event.time)
        self._queue.append(_QueuedEvent(context, info))
        self.metrics.queue_depth.labels("kube-events").set(len(self._queue))
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                item = self._queue.popleft()
                self.metrics.queue_depth.labels("kube-events").set(len(self._queue))
                try:
                    await loop.run_in_executor(self.executor, self._create, item)
                except KubeWriteError as exc:
                    self.metrics.kube_events.labels("failed").inc()
                    logger.warning("%s", exc)
                else:
                    self.metrics.kube_events.labels("recorded").inc()

    def _create(self, item: _QueuedEvent) -> None:
        context = item.context
        self.writer.create_event(context.namespace, context.name, context.uid, item.event)


def _message(event: DeviceEvent) -> str:
    if event.workload:
        return f"workload {event.workload}: {event.message}" if event.message else event.workload
    return event.message

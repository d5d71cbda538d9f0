"""The ingest path: MQTT delivery -> checks -> fleet state and NATS -> acknowledgement.

A delivery is acknowledged on MQTT only after JetStream acknowledged its publish and its
status (heartbeat or connection) was taken into the fleet state. A message that fails a
check (topic, unknown device, size, schema version, content) is rejected: counted, reported
on ``flotta.bridge.rejected`` (at most a few a minute per device) and acknowledged, so it never
blocks the devices behind it.
A publish that fails is retried with backoff and not acknowledged until it lands. Once a
metrics or logs batch has landed, its device gets a receipt (:mod:`flotta.bridge.receipts`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from flotta.backoff import Backoff, BackoffPolicy
from flotta.bridge.decoding import Report, decode_report, forwarded
from flotta.bridge.device_status import DeviceContext
from flotta.bridge.errors import RejectedMessageError
from flotta.bridge.fleet_state import Fleet
from flotta.bridge.metrics import BridgeMetrics
from flotta.bridge.mqtt_intake import Delivery
from flotta.bridge.outbound import Outbound, rejection, to_nats
from flotta.bridge.receipts import Receipt, receipt_for, retained_clear
from flotta.bridge.report_order import clock_is_off
from flotta.rate_limit import KeyedLimiter, TokenBucket
from flotta.schemas.errors import PayloadError, PayloadTooLargeError, SchemaVersionError, TopicError
from flotta.schemas.topics import TELEMETRY_KINDS, DeviceTopic, parse_device_topic
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport

logger = logging.getLogger(__name__)

BATCH = 512  # deliveries handled per turn of the loop
# Seconds a delivery that arrives alone waits for others before the turn starts. Messages that
# trickle in (a reconnect storm: a birth, a status and a will per device, one at a time) would
# otherwise each cost a NATS write, a flusher wake-up, an acknowledgement read and a PUBACK
# write of their own; handled together, they share them. A few milliseconds of latency against
# a write to the EdgeDevice paced in seconds.
GATHER = 0.005
# A JetStream publish that failed is tried again after 0.2 s, doubling up to 5 s, no jitter.
RETRY = BackoffPolicy(base=0.2, cap=5.0, jitter=0.0)
# A device that just enrolled may report before the EdgeDevice watch has delivered it: such
# messages wait this long (unacknowledged, so nothing is lost) before "unknown device".
UNKNOWN_GRACE = 5.0
UNKNOWN_POLL = 0.1
MAX_PARKED = 256
CONNECTION_SUFFIX = "/" + DeviceTopic.CONNECTION.value
PUBLISH_TIMEOUT = 10.0  # seconds for JetStream to acknowledge before the publish is retried
REPORTS_PER_DEVICE_RATE = 0.1  # rejections reported on NATS a second, per device
REPORTS_PER_DEVICE_BURST = 10.0
REPORTS_RATE = 50.0  # and for the whole bridge
REPORTS_BURST = 500.0


class Publisher(Protocol):
    async def publish(self, message: Outbound) -> asyncio.Future[None]: ...

    async def publish_core(self, message: Outbound) -> None: ...


class EventSink(Protocol):
    def offer(self, context: DeviceContext, event: DeviceEvent) -> None: ...


class Ingest:
    def __init__(
        self,
        *,
        fleet: Fleet,
        publisher: Publisher,
        events: EventSink,
        metrics: BridgeMetrics,
        ack: Callable[[Delivery], None],
        capacity: int,
        confirm: Callable[[Receipt], bool] | None = None,
        gather: float = GATHER,
    ) -> None:
        self.fleet = fleet
        self.gather = gather
        self.publisher = publisher
        self.events = events
        self.metrics = metrics
        self._ack = ack
        self._confirm = confirm
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=capacity)
        self._retries: set[asyncio.Task[None]] = set()
        self._parked: set[asyncio.Task[None]] = set()
        self._log_budget = TokenBucket(rate=1, burst=10, now=time.monotonic())
        # Rejections reported on NATS: a device flooding bad messages gets a few reported,
        # the rest only counted, so it cannot push out the reports of the others.
        self._report_limits = KeyedLimiter(
            per_key_rate=REPORTS_PER_DEVICE_RATE,
            per_key_burst=REPORTS_PER_DEVICE_BURST,
            rate=REPORTS_RATE,
            burst=REPORTS_BURST,
            now=time.monotonic(),
        )
        self._unreported = metrics.rejections_unreported
        self._depth = metrics.queue_depth.labels("ingest")
        self._kind_counters = {
            kind: metrics.messages_in.labels(kind.value) for kind in TELEMETRY_KINDS
        }
        self._clock_off = metrics.clock_off
        self._clears_seen = metrics.clears_seen
        self._retained_cleared = metrics.retained_cleared
        self._published_ok = metrics.nats_published.labels("ok")
        self._published_failed = metrics.nats_published.labels("failed")
        self.overflowed = 0
        self.acked = 0
        self._closed = False
        self._stopping = False
        # publishes awaiting their acknowledgement, oldest first: id -> (deadline, future)
        self._pending: dict[int, tuple[float, asyncio.Future[None]]] = {}

    # ---- intake side -------------------------------------------------------------------------

    def offer(self, delivery: Delivery) -> None:
        """Called by the MQTT intake for each message (in the loop)."""
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            # Not acknowledged: the broker keeps it in the session and redelivers it.
            self.overflowed += 1
            self.metrics.rejected.labels("overflow").inc()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        # nats-py swallows a cancellation that hits a publish while its flush queue is full,
        # so the loop also ends on ``stop()``.
        queue = self._queue
        while not self._stopping:
            delivery = await queue.get()
            if queue.empty() and self.gather > 0:
                await asyncio.sleep(self.gather)  # let the ones close behind it join the turn
            await self.handle(delivery)
            for _ in range(BATCH):
                if queue.empty() or self._stopping:
                    break
                await self.handle(queue.get_nowait())
            self._depth.set(queue.qsize())

    def stop(self) -> None:
        """Take no more deliveries (they stay unacknowledged in the broker's session)."""
        self._stopping = True

    async def close(self) -> None:
        self._stopping = True
        self._closed = True
        for task in [*self._retries, *self._parked]:
            task.cancel()
        await asyncio.gather(*self._retries, *self._parked, return_exceptions=True)

    # ---- one message -------------------------------------------------------------------------

    async def handle(self, delivery: Delivery, *, grace: bool = True) -> None:
        """Accept or reject one message; with ``grace``, a message from a device the fleet
        cache does not know yet waits a moment for the watch before it is rejected."""
        if not delivery.payload:
            # An empty payload clears a retained message (the operator's when a device is
            # deleted, the bridge's own clears below): nothing to take in, and no rejection.
            self._clears_seen.inc()
            self._done(delivery)
            return
        if delivery.retain and grace:
            self._clear_retained(delivery.topic)
        now = datetime.now(UTC)
        try:
            outbound, receipt = self._checked(delivery, now)
        except RejectedMessageError as exc:
            if exc.reason == "unknown-device" and grace and self._park(delivery):
                return
            await self._reject(delivery, exc, now)
            return
        await self._publish(delivery, outbound, receipt)

    def _checked(self, delivery: Delivery, now: datetime) -> tuple[Outbound, Receipt | None]:
        """:meth:`_accept`, total: a failure the checks did not foresee (a bug) costs this one
        message, never the devices whose messages come after it."""
        try:
            return self._accept(delivery, now)
        except RejectedMessageError:
            raise
        except Exception as exc:
            if self._log_budget.try_take(time.monotonic()):
                logger.exception("message on %r could not be handled", delivery.topic[:200])
            raise RejectedMessageError("internal-error", f"could not be handled: {exc!r}") from None

    def _clear_retained(self, topic: str) -> None:
        """A device left a retained message on a report topic: an observer subscribing later
        would get it. Clear it (its will and birth on ``connection`` are retained by design)."""
        if topic.endswith(CONNECTION_SUFFIX) or self._confirm is None:
            return
        if self._confirm(retained_clear(topic)):
            self._retained_cleared.inc()

    def _park(self, delivery: Delivery) -> bool:
        """Give a message from a device not (yet) in the fleet cache a short grace period."""
        if len(self._parked) >= MAX_PARKED or self._closed:
            return False
        task = asyncio.get_running_loop().create_task(self._unpark(delivery))
        self._parked.add(task)
        task.add_done_callback(self._parked.discard)
        return True

    async def _unpark(self, delivery: Delivery) -> None:
        try:
            device_id: str | None = parse_device_topic(delivery.topic).device_id
        except TopicError:
            device_id = None
        deadline = time.monotonic() + UNKNOWN_GRACE
        while device_id is not None and time.monotonic() < deadline:
            if self.fleet.context(device_id) is not None:
                break
            await asyncio.sleep(UNKNOWN_POLL)
        await self.handle(delivery, grace=False)

    def _accept(self, delivery: Delivery, now: datetime) -> tuple[Outbound, Receipt | None]:
        try:
            parsed = parse_device_topic(delivery.topic)
        except TopicError as exc:
            raise RejectedMessageError("bad-topic", str(exc)) from None
        if parsed.kind not in TELEMETRY_KINDS:
            raise RejectedMessageError("bad-topic", f"{parsed.kind.value!r} is not a device report")
        context = self.fleet.context(parsed.device_id)
        if context is None:
            raise RejectedMessageError(
                "unknown-device", f"no EdgeDevice named {parsed.device_id!r} in any namespace"
            )
        try:
            payload = decode_report(parsed.kind, delivery.payload)
        except PayloadTooLargeError as exc:
            raise RejectedMessageError("oversized", str(exc)) from None
        except SchemaVersionError as exc:
            raise RejectedMessageError("schema-version", str(exc)) from None
        except PayloadError as exc:
            raise RejectedMessageError("malformed", str(exc)) from None
        self._kind_counters[parsed.kind].inc()
        self._apply(parsed.device_id, parsed.kind, payload, context, now)
        outbound = to_nats(
            namespace=context.namespace,
            device_id=parsed.device_id,
            kind=parsed.kind,
            payload=payload,
            data=forwarded(payload),
            now=now,
        )
        return outbound, receipt_for(parsed.device_id, payload)

    def _apply(
        self,
        device_id: str,
        kind: DeviceTopic,
        payload: Report,
        context: DeviceContext,
        now: datetime,
    ) -> None:
        mono = time.monotonic()
        if isinstance(payload, StatusReport):
            if clock_is_off(payload.time, now):
                self._clock_off.inc()
            self.fleet.heartbeat(device_id, payload, now, mono)
        elif isinstance(payload, ConnectionState):
            self.fleet.connection(device_id, payload, now, mono)
        elif isinstance(payload, DeviceEvent):
            self.events.offer(context, payload)

    async def _reject(self, delivery: Delivery, exc: RejectedMessageError, now: datetime) -> None:
        self.metrics.rejected.labels(exc.reason).inc()
        if self._log_budget.try_take(time.monotonic()):
            logger.warning("rejected message on %r: %s", delivery.topic[:200], exc)
        if self._report_limits.try_take(_sender(delivery.topic), time.monotonic()):
            report = rejection(
                topic=delivery.topic[:512],
                reason=str(exc)[:1024],
                size=len(delivery.payload),
                now=now,
            )
            try:
                await self.publisher.publish_core(report)
            except Exception as error:
                logger.warning("could not report a rejection on NATS: %s", error)
        else:
            self._unreported.inc()
        self._done(delivery)

    # ---- publishing and acknowledgement ------------------------------------------------------

    async def _publish(
        self, delivery: Delivery, outbound: Outbound, receipt: Receipt | None
    ) -> None:
        started = time.perf_counter()
        try:
            future = await self.publisher.publish(outbound)
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from exc  # nats-py turned it into another error
            self._published_failed.inc()
            self._retry(delivery, outbound, receipt, exc)
            return

        key = id(future)
        self._pending[key] = (time.monotonic() + PUBLISH_TIMEOUT, future)

        def published(done: asyncio.Future[None]) -> None:
            self._pending.pop(key, None)
            error = TimeoutError("no acknowledgement") if done.cancelled() else done.exception()
            if error is not None:
                self._published_failed.inc()
                self._retry(delivery, outbound, receipt, error)
                return
            self._published_ok.inc()
            self.metrics.nats_latency.observe(time.perf_counter() - started)
            self._landed(delivery, receipt)

        future.add_done_callback(published)

    def sweep(self, now: float) -> int:
        """Give up on publishes not acknowledged in time (they are retried); how many."""
        expired = []
        for key, (deadline, future) in self._pending.items():
            if deadline > now:
                break
            expired.append((key, future))
        for key, future in expired:
            self._pending.pop(key, None)
            future.cancel()
        return len(expired)

    def _retry(
        self,
        delivery: Delivery,
        outbound: Outbound,
        receipt: Receipt | None,
        error: BaseException,
    ) -> None:
        if self._closed:
            return  # unacknowledged: the broker redelivers it to the next session
        if self._log_budget.try_take(time.monotonic()):
            logger.warning("JetStream publish to %s failed (%s); retrying", outbound.subject, error)
        task = asyncio.get_running_loop().create_task(
            self._retry_loop(delivery, outbound, receipt), name=f"retry {outbound.msg_id}"
        )
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry_loop(
        self, delivery: Delivery, outbound: Outbound, receipt: Receipt | None
    ) -> None:
        for delay in Backoff(RETRY):
            await asyncio.sleep(delay)
            try:
                future = await self.publisher.publish(outbound)
                await asyncio.wait_for(future, PUBLISH_TIMEOUT)
            except Exception:
                self._published_failed.inc()
                continue
            self._published_ok.inc()
            self._landed(delivery, receipt)
            return

    def _landed(self, delivery: Delivery, receipt: Receipt | None) -> None:
        """JetStream holds the message (or already had it): confirm it to the device, then
        acknowledge it to the broker. A receipt that cannot be sent only means the device sends
        the batch again later, and JetStream drops the copy."""
        if receipt is not None and self._confirm is not None:
            self._confirm(receipt)
        self._done(delivery)

    def _done(self, delivery: Delivery) -> None:
        self.acked += 1
        self._ack(delivery)


def _sender(topic: str) -> str:
    """The device a message claims to come from (the broker's ACL makes it true), or ``""``
    for a topic outside the contract."""
    try:
        return parse_device_topic(topic).device_id
    except TopicError:
        return ""

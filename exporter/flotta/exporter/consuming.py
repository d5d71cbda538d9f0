"""One sink's delivery: pull from its durable consumer, decode, hand batches to the sink,
acknowledge what it accepted.

* **Lanes**: ``select`` names the sink instance of each batch (for Prometheus: the receiver
  of the batch's device; for syslog: the device's own sink). Each sink instance has a lane:
  its batches queue there in stream order and go out one send at a time, a send taking
  whatever queued meanwhile (up to ``fetch_batch`` batches), so requests fill up under load.
  Lanes run side by side: a receiver that is down holds back its own lane only, and the pull
  goes on for the others.
* **Order**: a fetch is taken in stream order, a device's batches always go to the same lane
  (while its routing does not change), and a lane sends in order and retries its head
  before anything behind it, so a device's later batch never overtakes an earlier one in
  this replica. (Two replicas may hold batches of the same device at once: Prometheus takes
  late samples within its out-of-order window, Loki takes unordered writes.)
* **Bounded**: a replica pulls ``fetch_batch`` messages at a time and stops pulling while it
  holds ``max_held`` unacknowledged; JetStream's ``max_ack_pending`` bounds all replicas
  together. A lane that cannot deliver keeps its messages: once they fill ``max_held`` every
  lane waits, and the consumer's lag grows in JetStream.
* **Accepted**: the messages are acknowledged, the items counted (``too_old`` separately).
* **Retry**: the same batches are sent again after a backoff (capped, jittered, or the delay
  the sink asked for); the messages are kept alive (``in_progress``) meanwhile, so JetStream
  does not hand them to another replica. Nothing is lost until the stream's retention drops
  it.
* **Refused**: a send of several batches is split in halves and each sent again, down to the
  one batch the sink refuses, which goes to the dead-letter subject with the reason and is
  then acknowledged. A message that is no batch at all (bad subject, envelope or data) is
  dead-lettered the same way, never raised.
* A replica that dies holds no acknowledged-but-undelivered message: JetStream hands what it
  held to another replica (or to it, restarted) after ``ack_wait``. A batch delivered again
  that way reaches the sink twice: Prometheus stores an identical sample once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

from flotta.backoff import Backoff, BackoffPolicy
from flotta.exporter.envelopes import EnvelopeDecoder, UndeliverableError
from flotta.exporter.jetstream import ConsumerSpec, JetStream
from flotta.exporter.metrics import ExporterMetrics
from flotta.exporter.sink import Accepted, BatchT, DeviceBatch, Retry, Sink

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    fetch_batch: int = 256  # messages per pull
    fetch_wait: float = 0.5  # seconds a pull waits for more (and when the stream is idle)
    max_held: int = 1024  # unacknowledged messages this replica holds at most
    retry: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(base=0.5, cap=30.0, stable_after=0.0, jitter=0.5)
    )
    lag_every: float = 5.0  # seconds between consumer-lag readings
    subscribe_retry: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(base=0.5, cap=10.0, stable_after=0.0, jitter=0.5)
    )


class PullSubscription(Protocol):
    async def fetch(self, batch: int = 1, timeout: float | None = 5) -> list[Msg]: ...  # noqa: ASYNC109

    async def consumer_info(self) -> Any: ...


Item = tuple[Msg, DeviceBatch[BatchT]]


class _Lane(Generic[BatchT]):
    """One sink instance's queue of batches, sent in order by one task at a time."""

    def __init__(self, sink: Sink[BatchT]) -> None:
        self.sink: Sink[BatchT] = sink
        self.items: deque[Item[BatchT]] = deque()
        self.task: asyncio.Task[None] | None = None


class SinkDelivery(Generic[BatchT]):
    """The loops of one sink; run each of :meth:`loops` as a guarded task."""

    def __init__(
        self,
        *,
        spec: ConsumerSpec,
        decoder: EnvelopeDecoder[BatchT],
        select: Callable[[DeviceBatch[BatchT]], Sink[BatchT]],
        jetstream: JetStream,
        metrics: ExporterMetrics,
        settings: DeliverySettings,
        routes_ready: Callable[[], bool] = lambda: True,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.sink_name = spec.sink
        self.decoder: EnvelopeDecoder[BatchT] = decoder
        self.select: Callable[[DeviceBatch[BatchT]], Sink[BatchT]] = select
        self.jetstream = jetstream
        self.metrics = metrics
        self.settings = settings
        self.routes_ready = routes_ready
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._subscription: PullSubscription | None = None
        self._subscribed = asyncio.Event()
        self._held: dict[int, Msg] = {}  # stream sequence -> message not yet acknowledged
        self._room = asyncio.Event()  # set when held messages were acknowledged
        self._lanes: dict[int, _Lane[BatchT]] = {}  # id(sink) -> its lane
        self._lane_failure: BaseException | None = None
        sink = spec.sink
        self._sent = metrics.sent.labels(sink)
        self._too_old = metrics.too_old.labels(sink)
        self._retried = metrics.retried.labels(sink)
        self._refused = metrics.refused.labels(sink)
        self._batches_sent = metrics.batches.labels(sink, "sent")
        self._in_flight = metrics.in_flight.labels(sink)
        self._latency = metrics.send_latency.labels(sink)
        self._delay = metrics.delay.labels(sink)

    @property
    def ready(self) -> bool:
        return self._subscribed.is_set()

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        name = self.sink_name
        return {
            f"{name}-fetch": self._fetch_loop(),
            f"{name}-keepalive": self._keepalive_loop(),
            f"{name}-lag": self._lag_loop(),
        }

    async def release(self, *, nak: bool = True) -> None:
        """At shutdown: stop the lanes, and (``nak``) hand what this replica holds back to
        JetStream at once (another replica takes it without waiting for ``ack_wait``)."""
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        self._lanes.clear()
        for task in lanes:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
        held, self._held = self._held, {}
        for msg in held.values() if nak else ():
            try:
                await msg.nak()
            except (NatsError, OSError) as exc:
                logger.debug("nak at shutdown failed: %s", exc)
                break
        self._in_flight.set(0)

    # ---- loops -------------------------------------------------------------------------------

    async def _subscribe(self) -> PullSubscription:
        backoff = Backoff(self.settings.subscribe_retry, self._rng)
        while True:
            try:
                subscription: PullSubscription = await self.jetstream.subscribe(self.spec)
            except NotFoundError:
                delay = backoff.next_delay()
                logger.warning(
                    "stream for %s not found (the bridge creates it); again in %.1f s",
                    self.spec.filter_subject,
                    delay,
                )
            except (NatsError, OSError) as exc:
                delay = backoff.next_delay()
                logger.warning(
                    "consumer for sink %s not created: %s; again in %.1f s",
                    self.sink_name,
                    exc,
                    delay,
                )
            else:
                self._subscription = subscription
                self._subscribed.set()
                logger.info(
                    "sink %s reads %s with durable consumer %s",
                    self.sink_name,
                    self.spec.filter_subject,
                    f"flotta-exporter-{self.sink_name}",
                )
                return subscription
            await asyncio.sleep(delay)

    async def _fetch_loop(self) -> None:
        # Nothing is fetched before ``select`` can route (the per-device receivers listed):
        # a batch routed to the default receiver for want of its device would stay there.
        waited = 0
        while not self.routes_ready():
            waited += 1
            if waited % 50 == 1:
                logger.info(
                    "sink %s waits for its routes (receivers not listed yet)", self.sink_name
                )
            await asyncio.sleep(0.2)
        subscription = await self._subscribe()
        settings = self.settings
        backoff = Backoff(settings.subscribe_retry, self._rng)
        while True:
            _still_wanted()
            self._raise_lane_failure()
            try:
                msgs = await subscription.fetch(settings.fetch_batch, timeout=settings.fetch_wait)
            except (TimeoutError, NatsTimeoutError):
                continue
            except (NatsError, OSError) as exc:
                delay = backoff.next_delay()
                logger.warning("fetch for sink %s failed: %s", self.sink_name, exc)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            for msg in msgs:
                self._held[msg.metadata.sequence.stream] = msg
            self._in_flight.set(len(self._held))
            await self.deliver(msgs)
            while len(self._held) >= settings.max_held:
                self._room.clear()
                await self._room.wait()
                self._raise_lane_failure()

    async def _keepalive_loop(self) -> None:
        """Tell JetStream the held messages are being worked on, so that a slow or retrying
        sink does not make it hand them to another replica."""
        period = max(0.5, self.spec.ack_wait / 3)
        while True:
            await asyncio.sleep(period)
            _still_wanted()
            for msg in list(self._held.values()):
                try:
                    await msg.in_progress()
                except (NatsError, OSError) as exc:
                    logger.debug("in_progress failed: %s", exc)
                    break

    async def _lag_loop(self) -> None:
        await self._subscribed.wait()
        gauge = self.metrics.lag.labels(self.sink_name)
        while True:
            assert self._subscription is not None
            try:
                info = await self._subscription.consumer_info()
            except (NatsError, OSError, TimeoutError) as exc:
                logger.debug("consumer info for %s failed: %s", self.sink_name, exc)
            else:
                gauge.set(int(info.num_pending or 0) + int(info.num_ack_pending or 0))
            _still_wanted()
            await asyncio.sleep(self.settings.lag_every)

    # ---- one fetch ---------------------------------------------------------------------------

    async def deliver(self, msgs: Sequence[Msg]) -> None:
        """Put one fetch's batches in their lanes (undecodable ones dead-lettered)."""
        self._raise_lane_failure()
        for msg in sorted(msgs, key=_stream_sequence):
            sequence = msg.metadata.sequence.stream
            try:
                batch = self.decoder.decode(msg.subject, msg.data, sequence)
            except UndeliverableError as exc:
                await self._dead_letter(msg, f"undecodable: {exc}", "undecodable")
                continue
            self._enqueue((msg, batch), self.select(batch))
        self._in_flight.set(len(self._held))

    def _enqueue(self, item: Item[BatchT], sink: Sink[BatchT]) -> None:
        lane = self._lanes.get(id(sink))
        if lane is None:
            lane = self._lanes[id(sink)] = _Lane(sink)
        lane.items.append(item)
        if lane.task is None:
            lane.task = asyncio.get_running_loop().create_task(
                self._run_lane(lane), name=f"{self.sink_name}:lane"
            )

    async def _run_lane(self, lane: _Lane[BatchT]) -> None:
        backoff = Backoff(self.settings.retry, self._rng)
        try:
            while lane.items:
                count = min(len(lane.items), self.settings.fetch_batch)
                group = self._still_here(lane, [lane.items.popleft() for _ in range(count)])
                if not group:
                    continue
                retry = await self._deliver_group(lane.sink, group)
                self._in_flight.set(len(self._held))
                self._room.set()
                if retry is None:
                    backoff.reset()
                    continue
                rest, outcome = retry
                lane.items.extendleft(reversed(rest))  # the head again, before what queued
                self._retried.inc()
                delay = max(outcome.after_seconds or 0.0, backoff.next_delay())
                if backoff.attempt <= 1 or backoff.attempt % 10 == 0:
                    logger.warning(
                        "sink %s: %s; %d batch(es) sent again in %.1f s (attempt %d)",
                        self.sink_name,
                        outcome.reason,
                        len(rest),
                        delay,
                        backoff.attempt,
                    )
                await asyncio.sleep(delay)
        except Exception as exc:  # the fetch loop raises it: the process becomes unhealthy
            logger.error("a %s lane failed: %s", self.sink_name, exc, exc_info=exc)
            self._lane_failure = exc
            self._room.set()
        finally:
            lane.task = None
            if not lane.items and self._lanes.get(id(lane.sink)) is lane:
                del self._lanes[id(lane.sink)]

    def _still_here(self, lane: _Lane[BatchT], group: list[Item[BatchT]]) -> list[Item[BatchT]]:
        """The items whose routing still names this lane's sink; the others move to the lane
        of their sink now (a device's receiver changed, or its CA Secret was read)."""
        kept: list[Item[BatchT]] = []
        for item in group:
            sink = self.select(item[1])
            if sink is lane.sink:
                kept.append(item)
            else:
                self._enqueue(item, sink)
        return kept

    def _raise_lane_failure(self) -> None:
        if self._lane_failure is not None:
            failure = self._lane_failure
            raise RuntimeError(f"a {self.sink_name} lane failed: {failure!r}") from failure

    async def _deliver_group(
        self, sink: Sink[BatchT], items: list[Item[BatchT]]
    ) -> tuple[list[Item[BatchT]], Retry] | None:
        """Deliver the items; on ``Retry`` the items not delivered yet, in order, with it."""
        pending: list[list[Item[BatchT]]] = [items]
        while pending:
            group = pending.pop(0)
            batches = [batch for _, batch in group]
            started = time.monotonic()
            outcome = await sink.send(batches)
            self._latency.observe(time.monotonic() - started)
            if isinstance(outcome, Retry):
                rest = list(group)
                for part in pending:
                    rest.extend(part)
                return rest, outcome
            if isinstance(outcome, Accepted):
                await self._accepted(group, outcome)
                continue
            self._refused.inc()
            logger.warning(
                "sink %s refused %d batch(es): %s", self.sink_name, len(group), outcome.reason
            )
            if len(group) > 1:
                middle = len(group) // 2
                pending[:0] = [group[:middle], group[middle:]]
            else:
                await self._dead_letter(group[0][0], f"refused: {outcome.reason}", "refused")
        return None

    async def _accepted(self, group: list[Item[BatchT]], outcome: Accepted) -> None:
        self._sent.inc(outcome.items)
        if outcome.too_old:
            self._too_old.inc(outcome.too_old)
        self._batches_sent.inc(len(group))
        now = time.time()
        for msg, _ in group:
            await self._ack(msg)
            self._delay.observe(max(0.0, now - msg.metadata.timestamp.timestamp()))

    async def _dead_letter(self, msg: Msg, reason: str, why: str) -> None:
        backoff = Backoff(self.settings.retry, self._rng)
        while True:
            try:
                await self.jetstream.dead_letter(self.sink_name, msg, reason)
                break
            except (NatsError, OSError, TimeoutError) as exc:
                delay = backoff.next_delay()
                logger.warning(
                    "dead letter of %s #%d not stored: %s; again in %.1f s",
                    msg.subject,
                    msg.metadata.sequence.stream,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        logger.warning(
            "dead-lettered %s #%d for sink %s: %s",
            msg.subject,
            msg.metadata.sequence.stream,
            self.sink_name,
            reason,
        )
        self.metrics.dead_lettered.labels(self.sink_name, why).inc()
        self.metrics.batches.labels(self.sink_name, "dead_lettered").inc()
        await self._ack(msg)

    async def _ack(self, msg: Msg) -> None:
        self._held.pop(msg.metadata.sequence.stream, None)
        try:
            await msg.ack()
        except (NatsError, OSError) as exc:
            # Not acknowledged: JetStream hands it out again and the sink takes it twice
            # (an identical sample is stored once).
            logger.warning("ack of %s failed: %s", msg.subject, exc)


def _still_wanted() -> None:
    """Raise CancelledError when this task was asked to stop: ``asyncio.wait_for`` in Python
    3.11 (which nats-py's requests use) can swallow a cancellation that races its result."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _stream_sequence(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)

"""The exporter process: one delivery per sink (its durable consumer, its loops), the
dead-letter stream, the health server; loops run as guarded tasks, and a loop that dies makes
``/healthz`` fail and ends the process, so its supervisor restarts it.

Start order: health server, NATS (and the dead-letter stream), then each sink's loops (which
wait for the telemetry stream if the bridge has not created it yet). Stop order: the loops,
what they held handed back to JetStream, the sinks, NATS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

from flotta.exporter.consuming import DeliverySettings, SinkDelivery
from flotta.exporter.envelopes import KINDS, EnvelopeDecoder
from flotta.exporter.jetstream import ConsumerSpec, DeadLetterSettings, JetStream
from flotta.exporter.metrics import ExporterMetrics
from flotta.exporter.sink import BatchT, DeviceBatch, Sink
from flotta.health import HealthServer
from flotta.schemas.topics import nats_filter
from flotta.tasks import FirstFailure, TaskSet, wait_first

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0  # seconds for the loops to end at shutdown


@dataclass(frozen=True, slots=True)
class SinkRoute(Generic[BatchT]):
    """A sink the exporter feeds: its name (consumer, metrics, dead letters), the kind of
    batch it takes, and which sink instance takes a given batch."""

    name: str
    model: type[BatchT]
    select: Callable[[DeviceBatch[BatchT]], Sink[BatchT]]
    aclose: Callable[[], Awaitable[None]]
    ack_wait: float = 30.0
    max_ack_pending: int = 4096
    ready: Callable[[], bool] = lambda: True
    """Whether what ``select`` relies on is there (the per-device receivers listed)."""


def single(sink: Sink[BatchT], model: type[BatchT]) -> SinkRoute[BatchT]:
    """The route of a sink that takes every device's batches (Loki, one syslog server)."""
    return SinkRoute(sink.name, model, lambda _batch: sink, sink.aclose)


@dataclass(frozen=True, slots=True)
class NatsTls:
    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass(frozen=True, slots=True)
class ExporterSettings:
    nats_url: str
    nats_tls: NatsTls | None = None
    client_name: str = "flotta-exporter"
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    dead_letters: DeadLetterSettings = field(default_factory=DeadLetterSettings)
    health_host: str = "127.0.0.1"
    health_port: int | None = None  # None: no health server


class ExporterTaskError(RuntimeError):
    """A loop of the exporter died: the process must end so that it is restarted."""


class Exporter:
    def __init__(
        self,
        settings: ExporterSettings,
        routes: list[SinkRoute[Any]],
        metrics: ExporterMetrics | None = None,
    ) -> None:
        if not routes:
            raise ValueError("the exporter needs at least one sink")
        self.settings = settings
        self.routes = routes
        self.metrics = metrics or ExporterMetrics()
        self.jetstream = JetStream(
            settings.nats_url,
            tls=settings.nats_tls.context() if settings.nats_tls is not None else None,
            name=settings.client_name,
        )
        self.deliveries: list[SinkDelivery[Any]] = []
        self._failure = FirstFailure()
        self._tasks = TaskSet("exporter", self._failure, until_stopped=True)
        self.health: HealthServer | None = None

    async def start(self) -> None:
        settings = self.settings
        if settings.health_port is not None:
            self.health = HealthServer(
                host=settings.health_host,
                port=settings.health_port,
                registry=self.metrics.registry,
                readiness=self.readiness,
                alive=self.alive,
            )
            await self.health.start()
        await self.jetstream.connect()
        await self.jetstream.ensure_dead_letter_stream(settings.dead_letters)
        for route in self.routes:
            delivery: SinkDelivery[Any] = SinkDelivery(
                spec=ConsumerSpec(
                    sink=route.name,
                    filter_subject=nats_filter((KINDS[route.model],))[0],
                    ack_wait=route.ack_wait,
                    max_ack_pending=route.max_ack_pending,
                ),
                decoder=EnvelopeDecoder(route.model),
                select=route.select,
                jetstream=self.jetstream,
                metrics=self.metrics,
                settings=settings.delivery,
                routes_ready=route.ready,
            )
            self.deliveries.append(delivery)
            for name, loop in delivery.loops().items():
                self._tasks.start(name, loop)

    async def close(self) -> None:
        self._tasks.quiet()
        await self._tasks.stop_all(grace=CLOSE_TIMEOUT)
        for delivery in self.deliveries:
            await delivery.release(nak=self.jetstream.connected)
        for route in self.routes:
            try:
                await route.aclose()
            except Exception:  # a sink that fails to close must not keep NATS open
                logger.exception("closing sink %s failed", route.name)
        await self.jetstream.close()
        if self.health is not None:
            await self.health.close()

    def readiness(self) -> dict[str, bool]:
        checks = {"loops": self.alive(), "nats": self.jetstream.connected}
        for delivery in self.deliveries:
            checks[f"consumer-{delivery.sink_name}"] = delivery.ready
        for route in self.routes:
            checks[f"routes-{route.name}"] = route.ready()
        return checks

    def alive(self) -> bool:
        return self.failure is None

    @property
    def failure(self) -> BaseException | None:
        """The first loop that died."""
        return self._failure.error

    async def wait_failed(self) -> BaseException:
        return await self._failure.wait()


async def run(
    settings: ExporterSettings, routes: list[SinkRoute[Any]], stop: asyncio.Event
) -> None:
    """Run until ``stop`` is set; raises :class:`ExporterTaskError` when a loop dies."""
    exporter = Exporter(settings, routes)
    try:
        await exporter.start()
        logger.info("exporter running: sinks %s", ", ".join(r.name for r in routes))
        await wait_first(stop.wait(), exporter.wait_failed())
        if exporter.failure is not None:
            raise ExporterTaskError(f"an exporter loop died: {exporter.failure!r}") from (
                exporter.failure
            )
    finally:
        await exporter.close()

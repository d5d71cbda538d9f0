"""The bridge process: wires the intake, the ingest path, the fleet state, the Kubernetes
writers and the health server together, and runs their loops as guarded tasks.

Start order: NATS (and its streams), then the EdgeDevice list (so that devices are known),
then MQTT. Stop order is the reverse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta import gc_freeze
from flotta.bridge.coalescer import (
    DEFAULT_CHANGE_HOLD,
    DEFAULT_CHANGE_SETTLE,
    DEFAULT_WRITE_BURST,
    DEFAULT_WRITE_RATE,
    REFRESH_PERIODS,
    WriteCoalescer,
)
from flotta.bridge.event_limit import EventLimiter
from flotta.bridge.fleet_state import OFFLINE_GRACE, Fleet
from flotta.bridge.ingest import Ingest
from flotta.bridge.kube import DeviceWatch, KubeWriter
from flotta.bridge.liveness import MISSED_PERIODS, LivenessTracker
from flotta.bridge.metrics import BridgeMetrics
from flotta.bridge.mqtt_intake import MqttIntake, MqttSettings
from flotta.bridge.presence import RENEW_EVERY, PresenceLease
from flotta.bridge.publishing import NatsPublisher
from flotta.bridge.receipts import ReceiptSender
from flotta.bridge.streams import StreamSettings, stream_specs
from flotta.bridge.writers import EventRecorder, StatusWriter
from flotta.health import HealthServer
from flotta.kube_watch import api_client
from flotta.mqtt import MqttClient, TlsFiles
from flotta.mqtt import MqttSettings as ClientSettings
from flotta.tasks import FirstFailure, TaskSet, wait_first

logger = logging.getLogger(__name__)

TICK = 1.0  # seconds between liveness checks
CLOSE_TIMEOUT = 10.0  # seconds for the loops to end at shutdown


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """The write-storm guard: see :mod:`flotta.bridge.coalescer`."""

    rate: float = DEFAULT_WRITE_RATE  # status writes a second, whole bridge
    burst: float = DEFAULT_WRITE_BURST
    refresh_rate: float = 5.0  # of which last-seen refreshes at most
    refresh_periods: float = REFRESH_PERIODS
    change_settle: float = DEFAULT_CHANGE_SETTLE  # seconds of quiet before ordinary changes
    change_hold: float = DEFAULT_CHANGE_HOLD  # at most this long
    workers: int = 4
    event_rate: float = 10.0  # Kubernetes Events a second, whole bridge
    event_burst: float = 50.0
    event_device_rate: float = 0.2  # per device: one every 5 s on average
    event_device_burst: float = 5.0


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    mqtt: MqttSettings
    nats_url: str
    kubeconfig: Path | None
    streams: StreamSettings = field(default_factory=StreamSettings)
    writes: WriteSettings = field(default_factory=WriteSettings)
    health_host: str = "127.0.0.1"
    health_port: int | None = None  # None: no health server
    missed_periods: float = MISSED_PERIODS  # raise it with more than two replicas
    offline_grace: float = OFFLINE_GRACE  # seconds from a will to Offline, unless it is back
    sync_timeout: float = 60.0
    # Where this replica's presence lease is renewed (flotta.bridge.presence); None: none.
    lease_namespace: str | None = None
    # The client certificate for a NATS that authenticates (tls:// URLs); None: no TLS.
    nats_tls: TlsFiles | None = None


class Bridge:
    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        writes = settings.writes
        now = time.monotonic()
        self.fleet = Fleet(
            WriteCoalescer(
                rate=writes.rate,
                burst=writes.burst,
                refresh_rate=writes.refresh_rate,
                now=now,
                change_settle=writes.change_settle,
                change_hold=writes.change_hold,
            ),
            refresh_periods=writes.refresh_periods,
            liveness=LivenessTracker(settings.missed_periods),
            offline_grace=settings.offline_grace,
        )
        self.publisher = NatsPublisher(
            settings.nats_url,
            tls=settings.nats_tls.context() if settings.nats_tls is not None else None,
        )
        self.executor = ThreadPoolExecutor(
            max_workers=writes.workers + 1, thread_name_prefix="kube-write"
        )
        # A bridge with a dead loop must not look healthy while it serves nobody: it reports
        # unhealthy and ``run`` ends the process, so its supervisor restarts it.
        self._failure = FirstFailure()
        self._tasks = TaskSet("bridge", self._failure, until_stopped=True)
        self._synced = asyncio.Event()
        self._watch: DeviceWatch | None = None
        self.intake: MqttIntake | None = None
        self.receipts: ReceiptSender | None = None
        self.ingest: Ingest | None = None
        self.status_writer: StatusWriter | None = None
        self.health: HealthServer | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        if settings.health_port is not None:
            self.health = HealthServer(
                host=settings.health_host,
                port=settings.health_port,
                registry=self.metrics.registry,
                readiness=self.readiness,
                alive=self.alive,
            )
            await self.health.start()
        await self.publisher.connect()
        await self.publisher.ensure_streams(stream_specs(settings.streams))

        api = api_client(settings.kubeconfig)
        writer = KubeWriter(api)
        self._watch = DeviceWatch(api, loop, self._on_watch)
        self._watch.start()
        await asyncio.wait_for(self._synced.wait(), settings.sync_timeout)

        writes = settings.writes
        recorder = EventRecorder(
            writer=writer,
            executor=self.executor,
            limiter=EventLimiter(
                per_device_rate=writes.event_device_rate,
                per_device_burst=writes.event_device_burst,
                rate=writes.event_rate,
                burst=writes.event_burst,
                now=time.monotonic(),
            ),
            metrics=self.metrics,
        )
        self.status_writer = StatusWriter(
            fleet=self.fleet,
            writer=writer,
            executor=self.executor,
            workers=writes.workers,
            metrics=self.metrics,
        )
        # Silence counts only while devices could be heard: from the first subscription on.
        self.fleet.liveness.pause(time.monotonic())
        intake = MqttIntake(settings.mqtt, self._on_delivery, self._on_link)
        self.receipts = ReceiptSender(receipt_client(settings.mqtt), self.metrics.receipts)
        self.ingest = Ingest(
            fleet=self.fleet,
            publisher=self.publisher,
            events=recorder,
            metrics=self.metrics,
            ack=intake.ack,
            capacity=2 * settings.mqtt.receive_maximum,
            confirm=self.receipts.offer,
        )
        self.intake = intake
        self._tasks.start("status-writer", self.status_writer.run())
        self._tasks.start("event-recorder", recorder.run())
        self._tasks.start("receipts", self.receipts.run())
        self._tasks.start("ingest", self.ingest.run())
        self._tasks.start("gc-freeze", gc_freeze.keep_frozen())
        self._tasks.start("liveness", self._tick_loop())
        if settings.lease_namespace is not None:
            presence = PresenceLease(
                api, namespace=settings.lease_namespace, holder=settings.mqtt.client_id
            )
            self._tasks.start("presence", self._presence_loop(presence))
        await intake.start()

    async def wait_ready(self) -> None:
        assert self.intake is not None
        await self.intake.wait_ready()

    async def close(self) -> None:
        self._tasks.quiet()  # stopping the ingest and the intake ends loops: no failure
        if self.ingest is not None:
            self.ingest.stop()
        if self.intake is not None:
            await self.intake.close()
        await self._tasks.stop_all(grace=CLOSE_TIMEOUT)
        if self.ingest is not None:
            await self.ingest.close()
        if self._watch is not None:
            self._watch.stop()
        await self.publisher.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.health is not None:
            await self.health.close()

    def readiness(self) -> dict[str, bool]:
        return {
            "loops": self.alive(),
            "mqtt": self.intake is not None and self.intake.ready,
            "nats": self.publisher.connected,
            "kubernetes": self._synced.is_set(),
        }

    # ---- loops and callbacks -----------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        """The first loop that died (logged by the task set)."""
        return self._failure.error

    async def wait_failed(self) -> BaseException:
        return await self._failure.wait()

    def alive(self) -> bool:
        return self.failure is None

    def _on_link(self, up: bool) -> None:
        liveness = self.fleet.liveness
        if up:
            if liveness.paused:
                liveness.resume(time.monotonic())
                logger.info("MQTT subscribed: missed heartbeats count again")
        else:
            liveness.pause(time.monotonic())
            logger.warning("MQTT connection lost: no device is marked offline until it is back")

    def _on_delivery(self, delivery: Any) -> None:
        assert self.ingest is not None
        self.ingest.offer(delivery)

    def _on_watch(self, kind: str, obj: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        mono = time.monotonic()
        if kind == "SYNCED":
            listed = {
                str(item.get("metadata", {}).get("name", "")) for item in obj.get("items", ())
            }
            for device_id in [d for d in self.fleet.device_ids() if d not in listed]:
                self.fleet.deleted(device_id)
            self._synced.set()
        elif kind == "DELETED":
            name = str(obj.get("metadata", {}).get("name", ""))
            context = self.fleet.context(name)
            if context is not None and context.namespace == obj.get("metadata", {}).get(
                "namespace"
            ):
                self.fleet.deleted(name)
        else:
            self.fleet.observed(obj, now, mono)
        self.metrics.devices.set(len(self.fleet))
        if self.status_writer is not None:
            self.status_writer.poke()

    async def _presence_loop(self, presence: PresenceLease) -> None:
        """Renew the presence lease while this replica serves devices; a failed renewal is
        tried again next time (the lease outlives two of them)."""
        loop = asyncio.get_running_loop()
        while True:
            if not all(self.readiness().values()):
                await asyncio.sleep(1.0)
                continue
            try:
                await loop.run_in_executor(self.executor, presence.renew)
            except (ApiException, HTTPError, OSError) as exc:
                self.metrics.presence_failures.inc()
                logger.warning("presence lease %s not renewed: %s", presence.name, exc)
            await asyncio.sleep(RENEW_EVERY)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            if self.ingest is not None:
                self.ingest.sweep(time.monotonic())
            silent = self.fleet.tick(datetime.now(UTC), time.monotonic())
            if silent:
                logger.info(
                    "%d device(s) now offline: heartbeats missed, or disconnected for %.0f s",
                    len(silent),
                    self.fleet.offline_grace,
                )
                if self.status_writer is not None:
                    self.status_writer.poke()


def receipt_client(intake: MqttSettings) -> MqttClient:
    """The connection receipts go out on: the bridge's identity, no session of its own."""
    return MqttClient(
        ClientSettings(
            host=intake.host,
            port=intake.port,
            client_id=f"{intake.client_id}-receipts",
            tls=TlsFiles(intake.ca, intake.cert, intake.key) if intake.tls else None,
            keepalive=intake.keepalive,
            clean_start=True,
            session_expiry=0,
            reconnect_base=intake.reconnect_min,
            reconnect_cap=intake.reconnect_max,
        )
    )


class BridgeTaskError(RuntimeError):
    """A loop of the bridge died: the process must end so that it is restarted."""


async def run(settings: BridgeSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; raises :class:`BridgeTaskError` when a loop dies."""
    bridge = Bridge(settings)
    try:
        await bridge.start()
        logger.info("bridge running: %d EdgeDevices known", len(bridge.fleet))
        await wait_first(stop.wait(), bridge.wait_failed())
        if bridge.failure is not None:
            raise BridgeTaskError(f"a bridge loop died: {bridge.failure!r}") from bridge.failure
    finally:
        await bridge.close()

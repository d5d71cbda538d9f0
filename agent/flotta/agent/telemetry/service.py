"""The telemetry service the agent runs: collectors -> on-disk buffer -> sender."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flotta.agent.telemetry.batching import Kind, record_body
from flotta.agent.telemetry.buffer import Flow, TelemetryBuffer
from flotta.agent.telemetry.errors import BufferStoreError, ScrapeError, TelemetryError
from flotta.agent.telemetry.logs import LogSource, follow
from flotta.agent.telemetry.samples import AllowList, Measurement, stamp
from flotta.agent.telemetry.scraping import PodEndpoint, ScrapeTarget, scrape, scrape_targets
from flotta.agent.telemetry.sending import Publish, SenderCounters, send_forever
from flotta.agent.telemetry.staging import Cursor, Staging
from flotta.agent.telemetry.system import SystemCollector
from flotta.backoff import Backoff, BackoffPolicy
from flotta.schemas.codec import decode
from flotta.schemas.errors import PayloadError
from flotta.schemas.wire import DesiredConfiguration, DesiredWorkload, TelemetryReceipt
from flotta.schemas.wire.common import KiB
from flotta.tasks import TaskSet

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# Retries wait at least half of the ceiling (jitter 0.5), which doubles up to 30 s.
SEND_RETRY = BackoffPolicy(base=0.5, cap=30.0, jitter=0.5)
LOG_RETRY = BackoffPolicy(base=1.0, cap=30.0, jitter=0.5)
BUFFER_FILE = "telemetry.sqlite3"
DEFAULT_FLOW = Flow()
RECEIPT_QUEUE = 1024  # receipts waiting to be applied; past it they are dropped (batches resent)


@dataclass(frozen=True, slots=True)
class TelemetryStats:
    buffered_records: int
    dropped_records: int
    unconfirmed_batches: int = 0
    dropped_by_log_target: Mapping[str, int] = field(default_factory=dict)
    """Lines a log target's ``bufferSize`` dropped (also in ``dropped_records``)."""


def log_target_limits(configuration: DesiredConfiguration) -> dict[str, int]:
    """The buffer's bound for each log target's lines waiting to be sent: upstream's
    ``bufferSize`` (KiB) of the ``logCollection`` entry. A workload naming a target that is
    not configured has no bound of its own (the buffer's retention still applies)."""
    return {
        name: settings.buffer_size_kib * KiB
        for name, settings in configuration.log_collection.items()
    }


@dataclass(frozen=True, slots=True)
class _SystemPlan:
    interval: float
    allow_list: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _LogPlan:
    workload: str


class TelemetryService:
    """Collects system metrics, workload metrics and workload logs into the buffer and sends
    them as batches through ``publish`` (see :meth:`run`)."""

    def __init__(
        self,
        state_dir: Path,
        device_id: str,
        *,
        max_bytes: int,
        log_source: LogSource | None = None,
        system: SystemCollector | None = None,
        flush_interval: float = 1.0,
        scrape_timeout: float = 10.0,
        staging_records: int = 5000,
        retry: Backoff | None = None,
        flow: Flow | None = DEFAULT_FLOW,
    ) -> None:
        self.device_id = device_id
        self.max_bytes = max_bytes
        self.buffer = TelemetryBuffer(state_dir / BUFFER_FILE, max_bytes=max_bytes)
        self.counters = SenderCounters()
        self.flow = flow
        self.bad_receipts = 0
        self._receipts: asyncio.Queue[TelemetryReceipt] = asyncio.Queue(RECEIPT_QUEUE)
        self._log_source = log_source
        self._system = system or SystemCollector()
        self._flush_interval = flush_interval
        self._scrape_timeout = scrape_timeout
        self._retry = retry or Backoff(SEND_RETRY)
        self._log_staging = Staging(staging_records)
        self._wake_sender = asyncio.Event()
        self._resume_sender = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._wake_flush = asyncio.Event()
        self._reconfigured = asyncio.Event()
        self._configuration = DesiredConfiguration()
        self._workloads: list[DesiredWorkload] = []
        self._endpoints: dict[str, PodEndpoint | str] = {}
        self._collectors = TaskSet("telemetry-collector")
        self._core = TaskSet("telemetry")
        self._closed = False
        self._stopping = asyncio.Event()
        self._run_finished = asyncio.Event()
        self._running = False

    # ---- configuration ---------------------------------------------------------------------

    def configure(
        self,
        configuration: DesiredConfiguration,
        workloads: Sequence[DesiredWorkload],
        workload_endpoints: Mapping[str, PodEndpoint | str],
    ) -> None:
        """Take a new desired configuration; running collectors follow it shortly.
        ``workload_endpoints``: where each workload's pod is reached (a plain address: from
        the agent's own network namespace)."""
        self._configuration = configuration
        self._workloads = list(workloads)
        self._endpoints = dict(workload_endpoints)
        self._reconfigured.set()

    def _plans(self) -> dict[Hashable, _SystemPlan | ScrapeTarget | _LogPlan]:
        plans: dict[Hashable, _SystemPlan | ScrapeTarget | _LogPlan] = {}
        system = self._configuration.metrics.system
        if not system.disabled:
            allow = tuple(system.allow_list) if system.allow_list is not None else None
            plan = _SystemPlan(float(max(1, system.interval)), allow)
            plans[plan] = plan
        for target in scrape_targets(self._workloads, self._endpoints):
            plans[target] = target
        if self._log_source is not None:
            for workload in self._workloads:
                if workload.log_collection:
                    log_plan = _LogPlan(workload.name)
                    plans[log_plan] = log_plan
        return plans

    def _limits(self) -> tuple[int, float | None]:
        metrics = self._configuration.metrics
        max_bytes = self.max_bytes
        if metrics.retention_max_mib > 0:
            max_bytes = min(max_bytes, metrics.retention_max_mib * MiB)
        max_age = metrics.retention_max_hours * 3600.0 if metrics.retention_max_hours > 0 else None
        return max_bytes, max_age

    # ---- running ---------------------------------------------------------------------------

    async def run(self, publish: Publish) -> None:
        """Collect and send until cancelled or closed; publish failures are retried with
        back-off while collection goes on."""
        if self._closed or self._running:
            raise TelemetryError("the telemetry service is closed or already running")
        self._running = True
        self._run_finished.clear()
        self._core.start(
            "sender",
            send_forever(
                self.buffer,
                publish,
                device_id=self.device_id,
                wake=self._wake_sender,
                backoff=self._retry,
                counters=self.counters,
                resume=self._resume_sender,
                flow=self.flow,
                reconnected=self._reconnected,
            ),
        )
        self._core.start("receipts", self._apply_receipts_forever())
        self._core.start("log-flusher", self._flush_logs_forever())
        try:
            while not self._stopping.is_set():
                self._reconfigured.clear()
                await self._apply_configuration()
                await self._reconfigured.wait()
        finally:
            await self._collectors.stop_all()
            await self._core.stop_all()
            await self._flush_logs()
            self._running = False
            self._run_finished.set()

    async def _apply_configuration(self) -> None:
        max_bytes, max_age = self._limits()
        try:
            await asyncio.to_thread(
                self.buffer.set_limits,
                max_bytes=max_bytes,
                max_age_seconds=max_age,
                bucket_bytes=log_target_limits(self._configuration),
            )
        except BufferStoreError as exc:
            log.error("telemetry: cannot apply the retention limits: %s", exc)
        plans = self._plans()
        for key in self._collectors.keys() - plans.keys():
            await self._collectors.stop(key)
        for key in plans.keys() - self._collectors.keys():
            plan = plans[key]
            if isinstance(plan, _SystemPlan):
                self._collectors.start(key, self._system_forever(plan))
            elif isinstance(plan, ScrapeTarget):
                self._collectors.start(key, self._scrape_forever(plan))
            elif self._log_source is not None:
                try:
                    cursor = await asyncio.to_thread(self.buffer.cursor, plan.workload)
                except BufferStoreError as exc:
                    log.error("telemetry: no log cursor for %s: %s", plan.workload, exc)
                    cursor = None
                self._collectors.start(
                    key,
                    follow(
                        plan.workload,
                        self._log_source,
                        self._log_staging,
                        self._wake_flush,
                        backoff=Backoff(LOG_RETRY),
                        cursor=cursor,
                    ),
                )

    async def _system_forever(self, plan: _SystemPlan) -> None:
        allow = AllowList(plan.allow_list)
        while True:
            started = time.monotonic()
            measurements = await asyncio.to_thread(self._system.collect)
            await self._store_metrics(measurements, allow)
            await asyncio.sleep(max(0.0, plan.interval - (time.monotonic() - started)))

    async def _scrape_forever(self, target: ScrapeTarget) -> None:
        allow = AllowList(target.allow_list)
        while True:
            started = time.monotonic()
            try:
                measurements = await scrape(target, time_limit=self._scrape_timeout)
            except ScrapeError as exc:
                log.info("telemetry: %s", exc)
            else:
                await self._store_metrics(measurements, allow)
            await asyncio.sleep(max(0.0, target.interval - (time.monotonic() - started)))

    async def _store_metrics(self, measurements: list[Measurement], allow: AllowList) -> None:
        samples, skipped = stamp(measurements, timestamp_ms=int(time.time() * 1000), allow=allow)
        if skipped:
            log.debug("telemetry: %d samples skipped (not finite or over limits)", skipped)
        await self._store(Kind.METRICS, [record_body(sample) for sample in samples], 0)

    async def _flush_logs_forever(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._wake_flush.wait()
            except TimeoutError:
                pass
            self._wake_flush.clear()
            await self._flush_logs()

    async def _flush_logs(self) -> None:
        staged = self._log_staging.take()
        targets = {w.name: w.log_collection for w in self._workloads}
        buckets = [targets.get(workload, "") for workload in staged.workloads]
        await self._store(Kind.LOGS, staged.records, staged.dropped, staged.cursors, buckets)

    async def _store(
        self,
        kind: Kind,
        bodies: list[bytes],
        dropped: int,
        cursors: dict[str, Cursor] | None = None,
        buckets: list[str] | None = None,
    ) -> None:
        if not bodies and not dropped and not cursors:
            return
        try:
            await asyncio.to_thread(
                self.buffer.add,
                kind,
                bodies,
                dropped_upstream=dropped,
                cursors=cursors,
                buckets=buckets,
            )
        except BufferStoreError as exc:
            log.error("telemetry: %d %s records lost: %s", len(bodies), kind, exc)
            return
        self._wake_sender.set()

    def connection_restored(self) -> None:
        """Send now rather than after the current back-off (call it when MQTT reconnects)."""
        self._retry.reset()
        self._reconnected.set()
        self._resume_sender.set()
        self._wake_sender.set()

    def receipt(self, payload: bytes) -> bool:
        """Take a receipt from the bridge (call it for each message on the receipts topic);
        False when it is malformed or cannot be queued (its batches are then sent again)."""
        try:
            receipt = decode(TelemetryReceipt, payload)
        except PayloadError as exc:
            self.bad_receipts += 1
            log.warning("telemetry: rejected a receipt: %s", exc)
            return False
        return self.take_receipt(receipt)

    def take_receipt(self, receipt: TelemetryReceipt) -> bool:
        """A decoded metrics or logs receipt; False when it cannot be queued."""
        try:
            self._receipts.put_nowait(receipt)
        except asyncio.QueueFull:
            log.warning(
                "telemetry: too many receipts waiting; %s batches will be resent", receipt.kind
            )
            return False
        return True

    async def _apply_receipts_forever(self) -> None:
        while True:
            receipt = await self._receipts.get()
            try:
                await asyncio.to_thread(
                    self.buffer.confirm, Kind(receipt.kind), receipt.stream, receipt.sequences
                )
            except BufferStoreError as exc:
                log.error("telemetry: cannot apply a receipt: %s", exc)
                continue
            self._wake_sender.set()

    # ---- reporting and shutdown ------------------------------------------------------------

    def stats(self) -> TelemetryStats:
        stats = self.buffer.stats()
        return TelemetryStats(
            buffered_records=stats.buffered_records + len(self._log_staging),
            dropped_records=stats.dropped_records,
            unconfirmed_batches=stats.batches_unconfirmed,
            dropped_by_log_target=stats.dropped_by_bucket,
        )

    async def close(self) -> None:
        """Stop every task (the staged log lines are flushed first) and close the buffer."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._reconfigured.set()
        if self._running:
            await self._run_finished.wait()
        await self._collectors.stop_all()
        await self._core.stop_all()
        await self._flush_logs()
        await asyncio.to_thread(self.buffer.close)

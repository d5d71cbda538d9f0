"""Devices from the work queue to the broker: assemble, compare versions, publish retained.

Publishing is pipelined: up to ``max_in_flight`` publishes await their PUBACK at once; an
acknowledgement records the version and, when a newer one arrived meanwhile, queues the device
again. API writes (finalizer, ``status.desiredVersion`` with the heartbeat period it tells the
device, ``workload/<name>`` labels) go to a
separate queue and wait while publishes are pending and for ``device_write_settle`` seconds
after the last, so they do not slow the fan-out down (its devices are still answering).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import UTC, datetime
from typing import Any

from flotta.operator.configuration import configuration_source
from flotta.operator.context import Context
from flotta.operator.errors import TransportError
from flotta.operator.fleet_cache import Key
from flotta.operator.hardware_labels import hardware_labels
from flotta.operator.labels import labels_patch, workload_labels_patch
from flotta.operator.ledger import Entry
from flotta.operator.unsupported import device_conditions_patch, device_fields
from flotta.pki.sealing import SealingError
from flotta.rate_limit import TokenBucket
from flotta.schemas.crd.common import DEVICE_FINALIZER
from flotta.schemas.crd.device import EdgeDeviceStatus
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import DeviceTopic, device_topic

logger = logging.getLogger(__name__)

BATCH = 256
RETRY_DELAY = 5.0


class Reconciler:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._max_in_flight = context.settings.max_in_flight
        self._in_flight = 0
        self._capacity = asyncio.Event()  # set when a publish may start
        self._idle = asyncio.Event()  # nothing to publish and nothing in flight
        self._idle.set()
        self._last_settled = float("-inf")  # monotonic time of the last publish's outcome
        self._written: dict[Key, dict[str, object]] = {}  # told_patch last written
        # the resourceVersion a conditions patch was written against (until the watch has it)
        self._conditions_written: dict[Key, str] = {}

    def _check_idle(self) -> None:
        if self._in_flight == 0 and len(self._context.publish) == 0:
            self._idle.set()

    # ---- reconcile -----------------------------------------------------------------------

    async def run_reconcile(self) -> None:
        context = self._context
        await context.synced.wait()
        while True:
            for key in await context.reconcile.get_batch(BATCH):
                self.reconcile(key)
            await asyncio.sleep(0)

    def reconcile(self, key: Key) -> None:
        context = self._context
        context.metrics.reconciles.inc()
        device = context.fleet.devices.get(key)
        if device is None:
            context.ledger.remove(key)
            context.desired.forget(key)
            context.rollouts.forget(key)
            return
        if device.metadata.deletion_timestamp is not None:
            context.cleanup.add(key)
            return
        try:
            assembled = context.desired.build(key)
        except (PayloadError, SealingError) as exc:
            context.metrics.errors.labels("assembly").inc()
            logger.warning("device %s/%s: desired state not built: %s", *key, exc)
            return
        for workload, reason in assembled.skipped:
            logger.info("device %s/%s: workload %s left out: %s", *key, workload, reason)
        context.rollouts.record(key, assembled.version, assembled.revisions)
        if context.ledger.update(
            key,
            assembled.version,
            assembled.payload,
            assembled.heartbeat_period,
            assembled.revisions,
            assembled.retry,
        ):
            # Publish at once while the window has room: assembly and publishing overlap.
            if self._can_send():
                self._send(key)
            else:
                context.publish.add(key)
        if self._needs_write(key):
            context.device_writes.add(key)

    def _needs_write(self, key: Key) -> bool:
        context = self._context
        device = context.fleet.devices[key]
        entry = context.ledger.current(key)
        status = device.status
        if DEVICE_FINALIZER not in device.metadata.finalizers:
            return True
        if told_patch(entry, status) is not None:
            return True
        return self._labels_patch(key) is not None or self._conditions_patch(key) is not None

    def _conditions_patch(self, key: Key) -> list[dict[str, Any]] | None:
        """The device's conditions with UnsupportedFields naming the unsupported fields its
        configuration in effect sets (see ``unsupported``); None when they already do, or
        while a patch of ours is not back from the watch yet."""
        context = self._context
        device = context.fleet.devices[key]
        if self._conditions_written.get(key) == device.metadata.resource_version:
            return None
        device_set = context.fleet.device_set(key)
        fields = device_fields(
            configuration_source(device, device_set),
            device_set=device_set.metadata.name if device_set is not None else "",
        )
        current = (device.status.conditions if device.status else None) or []
        return device_conditions_patch(
            current, fields, now=datetime.now(UTC).replace(microsecond=0)
        )

    def _labels_patch(self, key: Key) -> dict[str, str | None] | None:
        """``workload/<name>`` labels for the workloads that target the device, and the
        hardware labels of its reported inventory."""
        context = self._context
        device = context.fleet.devices[key]
        current = device.metadata.labels
        patch: dict[str, str | None] = dict(
            workload_labels_patch(current, context.fleet.workload_names_of(key)) or {}
        )
        hardware = device.status.hardware if device.status is not None else None
        patch.update(labels_patch(current, hardware_labels(hardware)) or {})
        return patch or None

    # ---- publish -------------------------------------------------------------------------

    def _can_send(self) -> bool:
        return self._in_flight < self._max_in_flight and self._context.broker.connected.is_set()

    def _send(self, key: Key) -> None:
        context = self._context
        started = context.ledger.start(key)
        if started is None:
            return
        mark, payload = started
        self._in_flight += 1
        self._idle.clear()
        context.broker.publish_callback(
            device_topic(key[1], DeviceTopic.DESIRED),
            payload,
            qos=1,
            retain=True,
            done=functools.partial(self._published, key, mark),
        )

    async def run_publish(self) -> None:
        context = self._context
        while True:
            batch = await context.publish.get_batch(BATCH)
            self._idle.clear()
            for key in batch:
                while not self._can_send():
                    self._capacity.clear()
                    if not context.broker.connected.is_set():
                        await context.broker.connected.wait()
                    else:
                        await self._capacity.wait()
                self._send(key)
            self._check_idle()

    def _published(self, key: Key, mark: str, error: TransportError | None) -> None:
        context = self._context
        self._in_flight -= 1
        self._last_settled = time.monotonic()
        self._capacity.set()
        if error is not None:
            context.metrics.publish_errors.inc()
            context.ledger.failed(key, mark)
            logger.debug("publish to %s/%s failed: %s", *key, error)
            # A refused publish is tried again after a pause; after a reconnect everything is
            # queued again anyway.
            if context.broker.connected.is_set():
                asyncio.get_running_loop().call_later(RETRY_DELAY, context.publish.add, key)
            self._check_idle()
            return
        context.metrics.publishes.inc()
        if context.ledger.acknowledged(key, mark):
            context.publish.add(key)
        context.device_writes.add(key)
        self._check_idle()

    def after_connect(self, session_present: bool) -> None:
        """After (re)connecting to the broker.

        A broker that still had our session still had its store (Mosquitto saves sessions and
        retained messages together): only what it never acknowledged goes again; a device whose
        retained copy was lost anyway (a crash between saves) says so with the version in its
        birth (``Ledger.announced``). Without our session the store may be gone: everything
        goes again. Republishing 10,000 states to a fleet that is reconnecting after a broker
        restart would only add to that storm."""
        context = self._context
        ledger = context.ledger
        context.publish.add_all(
            ledger.unpublished() if session_present else ledger.forget_published()
        )

    # ---- API writes about devices --------------------------------------------------------

    async def run_device_writes(self) -> None:
        context = self._context
        rate = context.settings.device_write_rate
        budget = TokenBucket(rate, max(1.0, rate), time.monotonic())
        batch_size = max(1, min(context.settings.writers * 8, int(budget.burst)))
        while True:
            batch = await context.device_writes.get_batch(batch_size)
            await self._quiet(context.settings.device_write_settle)
            await _take(budget, len(batch))
            await asyncio.gather(*(self._write_device(key) for key in batch))

    async def _quiet(self, settle: float) -> None:
        """Until nothing is being published and the last outcome is ``settle`` seconds old."""
        while True:
            await self._idle.wait()
            left = self._last_settled + settle - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)

    async def _write_device(self, key: Key) -> None:
        context = self._context
        device = context.fleet.devices.get(key)
        if device is None or device.metadata.deletion_timestamp is not None:
            return
        meta: dict[str, object] = {}
        if DEVICE_FINALIZER not in device.metadata.finalizers:
            meta["finalizers"] = [*device.metadata.finalizers, DEVICE_FINALIZER]
            meta["resourceVersion"] = device.metadata.resource_version
        labels = self._labels_patch(key)
        if labels is not None:
            meta["labels"] = labels
        entry = context.ledger.current(key)
        try:
            if meta:
                await context.kube.patch("edgedevices", *key, {"metadata": meta})
            told = told_patch(entry, device.status)
            if (
                told is not None
                and entry is not None
                and entry.published == entry.mark
                and self._written.get(key) != told
            ):
                await context.kube.patch_status("edgedevices", *key, told)
                self._written[key] = told
            conditions = self._conditions_patch(key)
            if conditions is not None:
                # Against the version read: a list patch must not undo the bridge's conditions.
                version = device.metadata.resource_version
                await context.kube.patch_status(
                    "edgedevices", *key, {"conditions": conditions}, resource_version=version
                )
                self._conditions_written[key] = version
        except TransportError as exc:
            context.metrics.errors.labels("api-write").inc()
            logger.info("device %s/%s: write failed, retrying later: %s", *key, exc)
            await asyncio.sleep(0.5)
            context.device_writes.add(key)


def told_patch(entry: Entry | None, status: EdgeDeviceStatus | None) -> dict[str, object] | None:
    """The status fields that say what the device is told, when the status does not say so yet:
    ``desiredVersion``, the heartbeat period of that version (the bridge counts missed
    heartbeats with it) and, under rollouts, the revisions it carries (``desiredRevisions``,
    which an operator that starts again reads to know who got what). The period is part of
    the version's content, so it changes only with
    the version; a status written before the period was recorded gets it once."""
    if entry is None or not entry.version:
        return None
    revisions = dict(item.split("=", 1) for item in entry.revisions)
    written = (status.desired_revisions or {}) if status is not None else {}
    if (
        status is not None
        and status.desired_version == entry.version
        and status.desired_heartbeat_period_seconds == entry.heartbeat_period
        and written == revisions
    ):
        return None
    patch: dict[str, object] = {
        "desiredVersion": entry.version,
        "desiredHeartbeatPeriodSeconds": entry.heartbeat_period,
    }
    if revisions or written:
        # A merge patch replaces map entries one by one: a rollout that left is removed.
        patch["desiredRevisions"] = {**dict.fromkeys(written), **revisions}
    return patch


async def _take(budget: TokenBucket, count: int) -> None:
    """Wait until ``count`` tokens are there, and take them."""
    delay = budget.wait_time(time.monotonic(), count)
    while delay > 0:
        await asyncio.sleep(delay)
        delay = budget.wait_time(time.monotonic(), count)
    budget.try_take(time.monotonic(), count)

"""EdgeWorkload and EdgeDeviceSet statuses, coalesced: each dirty object is written at most
once per interval and only when something a user sees changed; Events for invalid workloads.

Rollouts under way are evaluated every ``ROLLOUT_TICK`` seconds (batch timeouts pass without
any device saying anything), at once when a workload's spec changed, and, while the operator
hears the devices' status reports (:mod:`flotta.operator.report_watch`), as soon as a report
may move one (``Rollouts.heard_from``: its batch reaches its threshold or can no longer reach
it, or a device frees room in the disruption budget): the devices a batch admits are
reconciled at once, and a status whose phase or batch moved is written without waiting for the
interval. Reports that move nothing cost no evaluation: one over 10,000 devices costs tens of
milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from flotta.operator.context import Context
from flotta.operator.errors import TransportError
from flotta.operator.fleet_cache import Key
from flotta.operator.rendering import InvalidWorkload
from flotta.operator.rollout_revisions import (
    REVISION_SELECTOR,
    SET_KIND,
    WORKLOAD_KIND,
    RevisionError,
    controller_revision,
    from_controller_revision,
)
from flotta.operator.rollouts import Evaluation
from flotta.operator.unsupported import unsupported_condition, workload_fields
from flotta.operator.workload_status import same_status, workload_status

logger = logging.getLogger(__name__)

ROLLOUT_TICK = 2.0  # seconds between evaluations of rollouts under way
REPORT_DEBOUNCE = 0.005  # seconds: reports that arrive together make one evaluation
READY_WAIT = 2.0  # seconds a first admission waits for the status reports' subscription
HEARD_PHASES = ("Progressing", "Paused", "WaitingForApproval")  # rollouts that read reports
PHASES = ("Progressing", "Paused", "WaitingForApproval", "Halted", "Complete")


async def load_revisions(context: Context) -> None:
    """Read the rollouts' ControllerRevisions (before the first reconcile)."""
    for obj in await context.kube.list_revisions(REVISION_SELECTOR):
        try:
            context.rollouts.load_revisions([from_controller_revision(obj)])
        except RevisionError as exc:
            context.metrics.errors.labels("invalid-object").inc()
            logger.warning("%s", exc)


class StatusWriter:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._workloads: dict[Key, dict[str, Any]] = {}
        self._sets: dict[Key, dict[str, Any]] = {}  # status last written
        self._reported_invalid: dict[Key, str] = {}
        self._urgent = asyncio.Event()  # a rollout's phase or batch moved: write now
        self._seen: dict[tuple[str, str, str], tuple[str, int]] = {}  # (kind, *key) -> phase
        self._generations: dict[Key, int | None] = {}  # of workloads evaluated on a kick

    async def _pause(self) -> None:
        """The interval between writes, cut short when a rollout moved."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._context.settings.status_interval):
                await self._urgent.wait()
        self._urgent.clear()

    async def run_workloads(self) -> None:
        context = self._context
        await context.synced.wait()
        while True:
            batch = await context.workload_status.get_batch(100)
            for key in batch:
                await self._write_workload(key)
            await self._pause()

    async def run_sets(self) -> None:
        context = self._context
        await context.synced.wait()
        while True:
            batch = await context.set_status.get_batch(100)
            for key in batch:
                await self._write_set(key)
            await self._pause()

    async def _write_workload(self, key: Key) -> None:
        context = self._context
        entry = context.fleet.workloads.get(key)
        if entry is None:
            self._workloads.pop(key, None)
            self._reported_invalid.pop(key, None)
            context.rollouts.evaluate(key)  # forgets a deleted workload's rollout
            return
        namespace = key[0]
        targets = context.fleet.targets(key)
        versions = {}
        devices = {}
        for name in targets:
            ledger_entry = context.ledger.current((namespace, name))
            if ledger_entry is not None:
                versions[name] = ledger_entry.version
            device = context.fleet.devices.get((namespace, name))
            if device is not None:
                devices[name] = device
        previous = entry.model.status.conditions if entry.model.status else None
        now = datetime.now(UTC).replace(microsecond=0)
        generation = entry.model.metadata.generation
        status = workload_status(
            key[1],
            generation=generation,
            result=entry.result,
            targets=targets,
            devices=devices,
            current_versions=versions,
            previous=previous or [],
            now=now,
            unsupported=unsupported_condition(
                workload_fields(entry.model.spec), now=now, generation=generation
            ),
        )
        await self._report_invalid(key, entry.result, entry.model.to_api())
        evaluation = context.rollouts.evaluate(key)
        if evaluation is not None:
            status["rollout"] = evaluation.status
            await self._carry_out(key, entry.model.to_api(), evaluation)
        written = self._workloads.get(key)
        if written is None and entry.model.status is not None:
            written = entry.model.status.to_api()
        if same_status(written, status):
            return
        try:
            await context.kube.patch_status("edgeworkloads", *key, status)
            self._workloads[key] = status
        except TransportError as exc:
            context.metrics.errors.labels("api-write").inc()
            logger.info("workload %s/%s: status not written: %s", *key, exc)
            context.workload_status.add(key)

    async def run_rollouts(self) -> None:
        """Evaluate rollouts under way every few seconds (batch timeouts pass without any
        device saying anything), and at once when a spec changed or reports may move them."""
        context = self._context
        await context.synced.wait()
        changed = context.reports_changed
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ROLLOUT_TICK):
                    await changed.wait()
            if not changed.is_set():
                context.workload_status.add_all(context.rollouts.active(WORKLOAD_KIND))
                context.set_status.add_all(context.rollouts.active(SET_KIND))
                continue
            await asyncio.sleep(REPORT_DEBOUNCE)
            changed.clear()
            spent = await self._kicked()
            for kind, key in context.rollouts.take_due():
                spent += await self._evaluate_now(kind, key)
            # At most about half of the loop's time goes to evaluating (the writes that follow
            # an evaluation wait for the API, which costs this process nothing).
            await asyncio.sleep(spent)

    async def _kicked(self) -> float:
        """Workloads whose spec changed (a new generation): a new rollout starts at once.
        Seconds spent evaluating."""
        context = self._context
        spent = 0.0
        kicks, context.rollout_kicks = context.rollout_kicks, set()
        for key in sorted(kicks):
            entry = context.fleet.workloads.get(key)
            if entry is None:
                continue
            generation = entry.model.metadata.generation
            if self._generations.get(key) != generation:
                self._generations[key] = generation
                spent += await self._evaluate_now(WORKLOAD_KIND, key)
        return spent

    async def _evaluate_now(self, kind: str, key: Key) -> float:
        """Evaluate one rollout because a device reported: admit and reconcile at once; the
        status is written at once when the phase or batch moved, else with the interval.
        Seconds spent evaluating."""
        context = self._context
        if kind == WORKLOAD_KIND:
            entry = context.fleet.workloads.get(key)
            model: Any = entry.model if entry is not None else None
            queue = context.workload_status
        else:
            model = context.fleet.sets.get(key)
            queue = context.set_status
        slot = (kind, *key)
        if model is None:
            self._seen.pop(slot, None)
            return 0.0
        started = time.perf_counter()
        evaluation = context.rollouts.evaluate(key, kind)
        spent = time.perf_counter() - started
        if evaluation is None:
            return spent
        moved = self._seen.get(slot) != (evaluation.phase, evaluation.batch)
        queue.add(key)
        if moved or evaluation.reconcile or evaluation.events:
            self._urgent.set()
        await self._carry_out(key, model.to_api(), evaluation, kind)
        return spent

    async def _carry_out(
        self, key: Key, obj: dict[str, Any], evaluation: Evaluation, kind: str = WORKLOAD_KIND
    ) -> None:
        context = self._context
        metrics = context.metrics
        self._seen[(kind, *key)] = (evaluation.phase, evaluation.batch)
        if evaluation.phase in HEARD_PHASES:
            if evaluation.reconcile and evaluation.phase == "Progressing":
                # Devices about to get the revision report soon: be subscribed by then.
                await context.reports.ready(READY_WAIT)
            else:
                context.reports.want()
        for revision in evaluation.put:
            try:
                await context.kube.put_revision(
                    revision.namespace,
                    controller_revision(revision, obj.get("metadata", {}).get("uid", "")),
                )
                context.rollouts.written(revision)
            except TransportError as exc:
                metrics.errors.labels("api-write").inc()
                logger.info("revision %s not written: %s", revision.name, exc)
        for name in evaluation.delete:
            try:
                await context.kube.delete_revision(key[0], name)
                context.rollouts.deleted(key[0], name)
            except TransportError as exc:
                logger.info("revision %s not deleted: %s", name, exc)
        # The devices first (the revisions they get are written above), the Events after,
        # side by side (each takes its time in order when it starts).
        context.reconcile.add_all(evaluation.reconcile)
        for event_type, reason, message in evaluation.events:
            metrics.rollout_events.labels(reason).inc()
            logger.info("%s %s/%s: %s: %s", event_type, *key, reason, message)
        await asyncio.gather(
            *(
                context.kube.event(obj, reason=reason, message=message, type=event_type)
                for event_type, reason, message in evaluation.events
            )
        )
        labels = {"namespace": key[0], "owner": f"{kind}/{key[1]}"}
        metrics.rollout_batch.labels(**labels).set(evaluation.batch)
        for phase in PHASES:
            metrics.rollout_phase.labels(**labels, phase=phase).set(phase == evaluation.phase)
        for state in ("updated", "updating", "failed", "pending"):
            count = (evaluation.status or {}).get(f"{state}Devices") or 0
            metrics.rollout_devices.labels(**labels, state=state).set(count)

    async def _report_invalid(self, key: Key, result: object, obj: dict[str, Any]) -> None:
        context = self._context
        if isinstance(result, InvalidWorkload):
            if self._reported_invalid.get(key) != result.message:
                self._reported_invalid[key] = result.message
                logger.warning("workload %s/%s is invalid: %s", *key, result.message)
                await context.kube.event(
                    obj, reason="InvalidWorkload", message=result.message, type="Warning"
                )
        else:
            self._reported_invalid.pop(key, None)
        context.metrics.invalid_workloads.set(len(self._reported_invalid))

    async def _write_set(self, key: Key) -> None:
        context = self._context
        if key not in context.fleet.sets:
            self._sets.pop(key, None)
            context.rollouts.evaluate(key, SET_KIND)  # forgets a deleted set's rollout
            return
        members = len(context.fleet.members(key))
        device_set = context.fleet.sets[key]
        patch: dict[str, Any] = {"members": members}
        evaluation = context.rollouts.evaluate(key, SET_KIND)
        if evaluation is not None:
            patch["rollout"] = evaluation.status
            await self._carry_out(key, device_set.to_api(), evaluation, SET_KIND)
        written = self._sets.get(key)
        if written is None and device_set.status is not None:
            written = {"members": device_set.status.members}
            if evaluation is not None and device_set.status.rollout is not None:
                written["rollout"] = device_set.status.rollout.to_api()
        if written is not None and _same_set_status(written, patch):
            return
        try:
            await context.kube.patch_status("edgedevicesets", *key, patch)
            self._sets[key] = patch
        except TransportError as exc:
            logger.info("set %s/%s: status not written: %s", *key, exc)
            context.set_status.add(key)


def _same_set_status(written: dict[str, Any], patch: dict[str, Any]) -> bool:
    if written.get("members") != patch.get("members"):
        return False
    if "rollout" not in patch:
        return True
    return same_status(written.get("rollout") or None, patch["rollout"] or {})

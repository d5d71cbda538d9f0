"""Applying a version as a transaction: the new pods, the health gate, and by itself the way
back to the last known good state (online or offline). Decisions are made by
:func:`~flotta.agent.rollout_journal.next_step`, :mod:`~flotta.agent.health_gate` and
:mod:`~flotta.agent.update_window`; this module acts on them and journals each step.

Only the workloads whose specification differs from the good state's are replaced, and only
they are gated; a rollback re-applies the good state, which replaces exactly those again with
their previous specification, re-creates the ones the new version removed and removes the ones
it added. A version that failed is not applied again, unless the desired state carries a
greater retry token than the one it failed under (once per token); a newer one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from flotta.agent.agent_state import AgentState, Wakeups
from flotta.agent.applying import Applier
from flotta.agent.desired_store import DesiredStore
from flotta.agent.errors import StateStoreError
from flotta.agent.events import EventQueue, new_event
from flotta.agent.health_gate import Failure, GateWatch, gates_for
from flotta.agent.probing import probe_due
from flotta.agent.rollout_journal import (
    GOOD_FILE,
    MAX_ATTEMPTS,
    RolloutJournal,
    RolloutRecord,
    Step,
    Transaction,
    next_step,
)
from flotta.agent.runtime import (
    ContainerHealth,
    ImageUnavailableError,
    PodmanRuntime,
    WorkloadNotFoundError,
    WorkloadRuntimeError,
    spec_hash,
)
from flotta.agent.specs import Opener
from flotta.agent.update_window import ScheduleError, Window, window
from flotta.schemas.codec import encode
from flotta.schemas.errors import ContractError
from flotta.schemas.probes import pod_probes
from flotta.schemas.wire import DesiredState, VersionFailure
from flotta.schemas.wire.status import failure_place

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
Open = Callable[[DesiredState], Awaitable[Opener]]


class Rollout:
    def __init__(
        self,
        state: AgentState,
        wakeups: Wakeups,
        *,
        state_dir: Path,
        applier: Applier,
        runtime: PodmanRuntime,
        events: EventQueue,
        open_items: Open,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._state = state
        self._wakeups = wakeups
        self._applier = applier
        self._runtime = runtime
        self._events = events
        self._open = open_items
        self._poll = poll_seconds
        self._good_store = DesiredStore(state_dir, GOOD_FILE)
        self._journal = RolloutJournal(state_dir)
        self.good = self._good_store.load()
        self.record = self._journal.load()
        self._resumed = self.record.transaction is not None  # left by an earlier run
        self._prefetched = ""
        self._bad_schedule = ""
        state.failed = self.record.failed
        state.applied_version = self.good.version if self.good is not None else ""

    def adopt(self, desired: DesiredState | None) -> None:
        """A device upgraded from an agent without transactions: what it ran is good."""
        if self.good is None and desired is not None and not self._journal.exists():
            log.info("taking the persisted desired state %s as known good", desired.version)
            self._set_good(desired)
            self._save(RolloutRecord())

    def window(self, desired: DesiredState, now: datetime) -> Window:
        schedule = desired.configuration.update_schedule
        try:
            return window(schedule, now)
        except ScheduleError as exc:
            if self._bad_schedule != desired.version:
                self._bad_schedule = desired.version
                self._warn("UpdateScheduleInvalid", f"{exc}: applying without a window")
            return Window(open=True)

    async def step(self, desired: DesiredState, now: datetime) -> tuple[Step, Window]:
        """One pass; returns what it did and the window it judged by."""
        good_version = self.good.version if self.good is not None else ""
        current = self.window(desired, now)
        step = next_step(
            desired.version,
            good_version,
            self.record,
            window_open=current.open,
            retry=desired.retry,
        )
        state = self._state
        if step != "wait":
            state.waiting_version, state.window_opens = "", None
        if step == "rollback":
            await self._finish_rollback()
        elif step == "apply":
            await self._apply(desired)
        else:
            await self.keep_good()
            if self.record.transaction is not None:  # abandoned for another version
                self._save(msgspec.structs.replace(self.record, transaction=None))
                state.applying_version = ""
            if step == "wait":
                if state.waiting_version != desired.version:
                    log.info("version %s waits for the update window", desired.version)
                    self._events.put(
                        new_event(
                            "UpdateWaiting",
                            f"version {desired.version} waits for the update window "
                            f"(opens {current.opens.isoformat() if current.opens else 'never'})",
                        )
                    )
                    self._wakeups.events.set()
                state.waiting_version, state.window_opens = desired.version, current.opens
                await self._prefetch(desired)
        return step, current

    # ---- the good state ------------------------------------------------------------------

    def _good_or_empty(self) -> DesiredState:
        if self.good is not None:
            return self.good
        desired = self._state.desired
        return DesiredState(
            device_id=desired.device_id if desired is not None else "unknown",
            namespace=desired.namespace if desired is not None else "",
        )

    async def keep_good(self) -> None:
        """Make the pods match the last known good state (nothing when none: no pods)."""
        target = self._good_or_empty()
        outcome = await self._applier.apply(target, await self._open(target))
        state = self._state
        state.running = target
        state.failures = outcome.failures
        state.applied_version = target.version
        if outcome.changed or outcome.failures:
            self._wakeups.events.set()

    def _set_good(self, desired: DesiredState) -> None:
        try:
            self._good_store.save(encode(desired))
        except (StateStoreError, ContractError) as exc:  # kept in memory all the same
            log.error("cannot persist the good desired state: %s", exc)
        self.good = desired

    # ---- a transaction -------------------------------------------------------------------

    async def _apply(self, desired: DesiredState) -> None:
        state, version = self._state, desired.version
        previous = self.record.transaction
        attempts = 1
        if previous is not None and previous.version == version:
            attempts = previous.attempts + (1 if self._resumed else 0)
        self._resumed = False
        retry = previous.retry if previous is not None and previous.version == version else 0
        retry = max(retry, desired.retry)
        transaction = Transaction(version=version, attempts=attempts, retry=retry)
        self._save(msgspec.structs.replace(self.record, transaction=transaction))
        state.applying_version = version
        state.running = desired
        self._wakeups.heartbeat.set()
        failed = self.record.failed
        if attempts == 1 and failed is not None and failed.version == version:
            log.info("retrying version %s (retry token %d)", version, retry)
        if attempts > MAX_ATTEMPTS:
            message = f"the agent stopped {attempts - 1} times while applying this version"
            await self._roll_back(version, Failure("apply-failed", message=message))
            return
        log.info("applying version %s (attempt %d)", version, attempts)
        started = time.monotonic()
        opener = await self._open(desired)
        good = self._good_or_empty()
        converted = self._applier.convert(desired, opener)
        before = self._applier.convert(good, await self._open(good)).specs
        touched = sorted(
            name
            for name, spec in converted.specs.items()
            if name not in before or spec_hash(before[name]) != spec_hash(spec)
        )
        if converted.failures:
            name, message = sorted(converted.failures.items())[0]
            await self._roll_back(version, Failure("apply-failed", name, message=message))
            return
        probes = {w.name: pod_probes(w.pod_spec) for w in desired.workloads if w.name in touched}
        for name, found in sorted(probes.items()):
            if found.problems:
                message = "; ".join(str(problem) for problem in found.problems)
                await self._roll_back(version, Failure("apply-failed", name, message=message))
                return
        outcome = await self._applier.apply(desired, opener, converted)
        state.failures = outcome.failures
        for name in touched:
            error = outcome.errors.get(name)
            if error is not None:
                pulling = isinstance(error, ImageUnavailableError)
                failure = Failure(
                    "image-pull-failed" if pulling else "apply-failed", name, message=str(error)
                )
                await self._roll_back(version, failure)
                return
        gates = gates_for(
            touched,
            {workload.name: workload.health for workload in desired.workloads},
            desired.configuration.health,
        )
        watch = GateWatch(gates, {name: found.by_container for name, found in probes.items()})
        while True:
            if self._state.desired is not desired:
                log.info("version %s superseded while being verified", version)
                return  # the next pass decides: the journal still names this transaction
            elapsed = time.monotonic() - started
            observed = {name: await self._observe(name, watch, elapsed) for name in touched}
            verdict = watch.verdict(observed, time.monotonic() - started)
            if verdict.healthy:
                self._commit(desired)
                return
            if verdict.failure is not None:
                await self._roll_back(version, verdict.failure)
                return
            log.debug("version %s: waiting for %s", version, verdict.waiting_for)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeups.reconcile.wait(), self._poll)
            if self._state.desired is not desired:
                continue  # noticed at the top; the wake-up stays set for the outer loop
            self._wakeups.reconcile.clear()

    async def _observe(
        self, name: str, watch: GateWatch, elapsed: float
    ) -> list[ContainerHealth] | None:
        try:
            containers = await self._runtime.health(name)
        except WorkloadNotFoundError:
            return None
        await probe_due(watch, name, containers, elapsed, runtime=self._runtime)
        return containers

    def _commit(self, desired: DesiredState) -> None:
        state, version = self._state, desired.version
        self._set_good(desired)
        self._save(RolloutRecord())
        state.applied_version, state.applying_version, state.failed = version, "", None
        log.info("version %s is healthy", version)
        self._events.put(new_event("VersionHealthy", f"version {version} passed its health gate"))
        self._wakeups.heartbeat.set()
        self._wakeups.events.set()

    async def _roll_back(self, version: str, failure: Failure) -> None:
        transaction = self.record.transaction
        failed = VersionFailure(
            version=version,
            reason=failure.reason,
            workload=failure.workload[:256],
            container=failure.container[:256],
            exit_code=failure.exit_code,
            message=failure.message[:4096],
            time=datetime.now(UTC),
            retry=transaction.retry if transaction is not None else 0,
        )
        where = failure_place(failure.workload, failure.container, failure.exit_code)
        log.warning("version %s failed (%s)%s: %s", version, failure.reason, where, failure.message)
        self._warn(
            "VersionFailed",
            f"version {version} failed ({failure.reason}){where}: {failure.message}; rolling back",
            workload=failure.workload,
        )
        # After the event: a run killed once the journal says rolling-back only finishes the
        # rollback, so the event must be on disk by then (killed before, the version is
        # applied again and fails again).
        self._save(
            RolloutRecord(
                transaction=Transaction(version=version, phase="rolling-back", failure=failed),
                failed=self.record.failed,
            )
        )
        self._state.failed = failed
        await self._finish_rollback()

    async def _finish_rollback(self) -> None:
        transaction = self.record.transaction
        assert transaction is not None
        assert transaction.failure is not None
        self._state.applying_version = transaction.version
        await self.keep_good()
        failed = msgspec.structs.replace(transaction.failure, rolled_back=True)
        self._save(RolloutRecord(failed=failed))
        state = self._state
        state.failed, state.applying_version = failed, ""
        back_to = self.good.version if self.good is not None else "no workloads"
        log.info("rolled back from %s to %s", transaction.version, back_to)
        self._events.put(
            new_event(
                "VersionRolledBack",
                f"rolled back from version {transaction.version} to {back_to}",
                workload=failed.workload,
            )
        )
        self._wakeups.heartbeat.set()
        self._wakeups.events.set()

    # ---- helpers -------------------------------------------------------------------------

    async def _prefetch(self, desired: DesiredState) -> None:
        """Pull the waiting version's images now, so that its window can be short."""
        if self._prefetched == desired.version:
            return
        self._prefetched = desired.version
        converted = self._applier.convert(desired, await self._open(desired))
        for workload in desired.workloads:
            spec = converted.specs.get(workload.name)
            for image in sorted(set(images(workload.pod_spec))):
                try:
                    await self._runtime.pull(
                        image,
                        name=workload.name,
                        registry_auth=spec.registry_auth if spec is not None else None,
                    )
                except WorkloadRuntimeError as exc:
                    log.warning("pulling %s ahead of the window: %s", image, exc)

    def _save(self, record: RolloutRecord) -> None:
        self.record = record
        try:
            self._journal.save(record)
        except OSError as exc:
            log.error("cannot write the rollout journal: %s", exc)

    def _warn(self, reason: str, message: str, *, workload: str = "") -> None:
        self._events.put(new_event(reason, message, type_="Warning", workload=workload))
        self._wakeups.events.set()


def images(pod_spec: dict[str, Any]) -> Iterator[str]:
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                yield container["image"]

"""One reconciliation pass: desired workloads -> Podman, level-triggered.

Only workloads whose specification changed are replaced; workloads that left are removed;
a workload that cannot be converted (its secret cannot be opened) keeps whatever runs.
Failures become device events once per distinct message, not on every pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from flotta.agent.events import EventQueue, new_event
from flotta.agent.runtime import (
    PodmanRuntime,
    PodmanUnreachableError,
    WorkloadRuntimeError,
    WorkloadState,
    plan,
)
from flotta.agent.specs import ConvertedWorkloads, Opener, convert
from flotta.schemas.wire import DesiredState

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    failures: dict[str, str] = field(default_factory=dict)
    errors: dict[str, WorkloadRuntimeError] = field(default_factory=dict)  # Podman's refusals
    changed: bool = False


class Applier:
    def __init__(self, runtime: PodmanRuntime, events: EventQueue, *, state_dir: Path) -> None:
        self.runtime = runtime
        self.events = events
        self.state_dir = state_dir
        self._reported: dict[str, str] = {}  # workload -> last failure reported as an event

    def convert(self, desired: DesiredState, opener: Opener) -> ConvertedWorkloads:
        return convert(desired, opener=opener, state_dir=self.state_dir)

    async def apply(
        self, desired: DesiredState, opener: Opener, converted: ConvertedWorkloads | None = None
    ) -> Outcome:
        """Raises :class:`PodmanUnreachableError` when nothing can be done now.
        ``converted``: ``desired`` converted already (by :meth:`convert`)."""
        converted = converted or self.convert(desired, opener)
        failures = dict(converted.failures)
        running = await self.runtime.list_workloads()
        steps = plan(converted.specs, running)
        outcome = Outcome(failures)
        for name in steps.remove:
            if name in failures:
                continue  # desired still, but unreadable now: keep what runs
            if await self._step(name, "WorkloadRemoved", "removed", outcome, self.runtime.remove):
                outcome.changed = True
        for name in (*steps.create, *steps.replace):
            spec = converted.specs[name]
            (spec.export_dir or self.state_dir).mkdir(parents=True, exist_ok=True)
            verb = "deployed" if name in steps.create else "updated"
            reason = "WorkloadDeployed" if name in steps.create else "WorkloadUpdated"

            async def run(name: str) -> None:
                await self.runtime.apply(converted.specs[name])

            if await self._step(name, reason, verb, outcome, run):
                outcome.changed = True
        for name in steps.start:
            await self._step(name, "WorkloadStarted", "started again", outcome, self.runtime.start)
        for name, message in failures.items():
            self._report_failure(name, message)
        for name in list(self._reported):
            if name not in failures:
                del self._reported[name]
        return outcome

    async def _step(
        self,
        name: str,
        reason: str,
        verb: str,
        outcome: Outcome,
        action: Callable[[str], Awaitable[object]],
    ) -> bool:
        try:
            await action(name)
        except PodmanUnreachableError:
            raise
        except WorkloadRuntimeError as exc:
            log.warning("workload %s: %s", name, exc)
            outcome.failures[name] = str(exc)
            outcome.errors[name] = exc
            return False
        log.info("workload %s %s", name, verb)
        self.events.put(new_event(reason, f"workload {name} {verb}", workload=name))
        return True

    def _report_failure(self, name: str, message: str) -> None:
        if self._reported.get(name) == message:
            return
        self._reported[name] = message
        self.events.put(new_event("WorkloadFailed", message, type_="Warning", workload=name))

    async def remove_all(self) -> None:
        for name in sorted(await self.runtime.list_workloads()):
            await self.runtime.remove(name)

    async def phases(self) -> dict[str, WorkloadState]:
        return await self.runtime.phases()

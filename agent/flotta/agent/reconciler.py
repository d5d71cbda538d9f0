"""Level-triggered reconciling: the desired state is applied when it changes, when woken and
every resync period, a new version as a health-gated transaction (:mod:`flotta.agent.rollout`);
a deregistering state hands over to the deregistration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from flotta.agent.agent_state import AgentState, Wakeups
from flotta.agent.applying import Applier
from flotta.agent.endpoints import workload_endpoints
from flotta.agent.events import EventQueue
from flotta.agent.identity import IdentityStore
from flotta.agent.osupdate import OsUpdater
from flotta.agent.rollout import Rollout
from flotta.agent.runtime import PodmanRuntime, WorkloadRuntimeError
from flotta.agent.unsealing import OpenedItems, UnsealingError, open_in_child, sealed_items
from flotta.schemas.wire import DesiredState

log = logging.getLogger(__name__)

PODMAN_RETRY = 5.0
OPENED_KEPT = 3  # versions whose opened secrets are kept (the good one, the new one, ...)


class Reconciler:
    def __init__(
        self,
        state: AgentState,
        wakeups: Wakeups,
        *,
        resync_seconds: float,
        identity: IdentityStore,
        runtime: PodmanRuntime,
        applier: Applier,
        osupdater: OsUpdater,
        events: EventQueue,
        write_status: Callable[[], None],
        deregister: Callable[[], Awaitable[None]],
    ) -> None:
        self._state = state
        self._wakeups = wakeups
        self._resync_seconds = resync_seconds
        self._identity = identity
        self._runtime = runtime
        self._applier = applier
        self._osupdater = osupdater
        self._events = events
        self._write_status = write_status
        self._deregister = deregister
        self._unsealed: dict[str, OpenedItems] = {}  # per desired version
        self.rollout = Rollout(
            state,
            wakeups,
            state_dir=applier.state_dir,
            applier=applier,
            runtime=runtime,
            events=events,
            open_items=self._opened,
        )
        self._telemetry_version: str | None = None  # the version telemetry was set up for
        self._os_version: str | None = None  # the good version whose OS request was acted on

    async def run(self) -> None:
        wake = self._wakeups.reconcile
        delay = self._resync_seconds
        self.rollout.adopt(self._state.desired)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            wake.clear()
            delay = self._resync_seconds
            desired = self._state.desired
            if desired is None:
                continue  # nothing known yet: leave whatever runs alone
            if desired.deregister:
                await self._deregister()
                return
            try:
                delay = min(delay, await self._reconcile(desired))
            except WorkloadRuntimeError as exc:  # unreachable, or a pod changed meanwhile
                self._state.last_error = str(exc)
                log.warning("reconcile: %s; retrying in %.0f s", exc, PODMAN_RETRY)
                delay = PODMAN_RETRY
            finally:
                self._write_status()

    async def _reconcile(self, desired: DesiredState) -> float:
        """One pass; returns the longest wait until the next (the window's opening)."""
        state = self._state
        now = datetime.now(UTC)
        before = state.applied_version
        _, window = await self.rollout.step(desired, now)
        state.states = await self._applier.phases()
        running = state.running
        if state.telemetry is not None and running is not None:
            endpoints = await workload_endpoints(self._runtime, running.workloads)
            if endpoints != state.endpoints or running.version != self._telemetry_version:
                state.endpoints, self._telemetry_version = endpoints, running.version
                state.telemetry.configure(running.configuration, running.workloads, endpoints)
        await self._os_update(window.open)
        if state.applied_version != before:
            log.info("running desired state %s", state.applied_version)
            self._wakeups.heartbeat.set()
        if window.opens is not None:
            return max(1.0, (window.opens - now).total_seconds())
        return self._resync_seconds

    async def _os_update(self, window_open: bool) -> None:
        """The good state's OS request, once per good version, in the update window; outside
        it, the first pass after a start only judges a finished reboot."""
        good = self.rollout.good
        if good is None or self._os_version == good.version:
            return
        if not window_open and self._os_version is not None:
            return
        events = await self._osupdater.reconcile(good.configuration.os, change=window_open)
        self._os_version = good.version if window_open else ""
        for event in events:
            self._events.put(event)
        if events:
            self._wakeups.events.set()

    async def _opened(self, desired: DesiredState) -> OpenedItems:
        """The sealed items of ``desired``, opened once per version (in a child process)."""
        known = self._unsealed.get(desired.version)
        if known is not None:
            return known
        items = sealed_items(desired)
        identity = self._identity
        try:
            opened = await open_in_child(identity.key_path, identity.device_id, items)
        except UnsealingError as exc:
            log.error("sealed secrets not opened: %s", exc)
            return OpenedItems.failed(items, str(exc))
        while len(self._unsealed) >= OPENED_KEPT:
            del self._unsealed[next(iter(self._unsealed))]
        self._unsealed[desired.version] = opened
        return opened

"""Level-triggered reconciling: the desired state is applied when it changes, when woken and
every resync period; a deregistering state hands over to the deregistration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from flotta.agent.agent_state import AgentState, Wakeups
from flotta.agent.applying import Applier
from flotta.agent.endpoints import workload_endpoints
from flotta.agent.events import EventQueue
from flotta.agent.identity import IdentityStore
from flotta.agent.osupdate import OsUpdater
from flotta.agent.runtime import PodmanRuntime, WorkloadRuntimeError
from flotta.agent.unsealing import OpenedItems, UnsealingError, open_in_child, sealed_items
from flotta.schemas.wire import DesiredState

log = logging.getLogger(__name__)

PODMAN_RETRY = 5.0


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
        self._unsealed: tuple[str, OpenedItems] | None = None  # per desired version

    async def run(self) -> None:
        wake = self._wakeups.reconcile
        delay = self._resync_seconds
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
                await self._reconcile(desired)
            except WorkloadRuntimeError as exc:  # unreachable, or a pod changed meanwhile
                self._state.last_error = str(exc)
                log.warning("reconcile: %s; retrying in %.0f s", exc, PODMAN_RETRY)
                delay = PODMAN_RETRY

    async def _reconcile(self, desired: DesiredState) -> None:
        state = self._state
        outcome = await self._applier.apply(desired, await self._opened(desired))
        state.failures = outcome.failures
        state.states = await self._applier.phases()
        if state.telemetry is not None:
            endpoints = await workload_endpoints(self._runtime, desired.workloads)
            if endpoints != state.endpoints or desired.version != state.applied_version:
                state.endpoints = endpoints
                state.telemetry.configure(desired.configuration, desired.workloads, endpoints)
        if desired.version != state.applied_version:
            state.applied_version = desired.version
            log.info("applied desired state %s", desired.version)
            for event in await self._osupdater.reconcile(desired.configuration.os):
                self._events.put(event)
            self._wakeups.heartbeat.set()
        if outcome.changed or outcome.failures:
            self._wakeups.events.set()
        self._write_status()

    async def _opened(self, desired: DesiredState) -> OpenedItems:
        """The sealed items of ``desired``, opened once per version (in a child process)."""
        if self._unsealed is not None and self._unsealed[0] == desired.version:
            return self._unsealed[1]
        items = sealed_items(desired)
        identity = self._identity
        try:
            opened = await open_in_child(identity.key_path, identity.device_id, items)
        except UnsealingError as exc:
            log.error("sealed secrets not opened: %s", exc)
            return OpenedItems.failed(items, str(exc))
        self._unsealed = (desired.version, opened)
        return opened

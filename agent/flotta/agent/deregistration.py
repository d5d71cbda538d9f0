"""The device was deleted: its workloads, data and identity go, then the agent stops."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from flotta.agent.agent_state import AgentState
from flotta.agent.applying import Applier
from flotta.agent.desired_store import DesiredStore
from flotta.agent.event_sender import EventSender
from flotta.agent.identity import IdentityStore
from flotta.agent.reconciler import PODMAN_RETRY
from flotta.agent.rollout_journal import GOOD_FILE, JOURNAL_FILE
from flotta.agent.runtime import PodmanUnreachableError

log = logging.getLogger(__name__)

STATE_DIRECTORIES = ("workloads", "telemetry", "events", "osupdate")


class Deregistration:
    def __init__(
        self,
        state: AgentState,
        stop: asyncio.Event,
        *,
        state_dir: Path,
        applier: Applier,
        store: DesiredStore,
        identity: IdentityStore,
        event_sender: EventSender,
    ) -> None:
        self._state = state
        self._stop = stop
        self._state_dir = state_dir
        self._applier = applier
        self._store = store
        self._identity = identity
        self._event_sender = event_sender

    async def run(self) -> None:
        log.warning("the device was deleted: removing its workloads, data and identity")
        while True:
            try:
                await self._applier.remove_all()
                break
            except PodmanUnreachableError as exc:
                log.warning("%s; retrying the removal in %.0f s", exc, PODMAN_RETRY)
                await asyncio.sleep(PODMAN_RETRY)
        state = self._state
        if state.telemetry is not None:
            await state.telemetry.close()
            state.telemetry = None
        self._event_sender.close_journal()
        self._store.erase()
        for name in (GOOD_FILE, JOURNAL_FILE):  # the rollout's: a new identity starts afresh
            (self._state_dir / name).unlink(missing_ok=True)
        for directory in STATE_DIRECTORIES:
            await asyncio.to_thread(shutil.rmtree, self._state_dir / directory, True)
        self._identity.erase()
        state.desired = None
        state.applied_version = ""
        state.states = {}
        state.phase = "deregistered"
        self._stop.set()

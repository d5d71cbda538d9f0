"""The agent daemon: re-applies the persisted desired state at once (offline or not), enrols
when it has no certificate, then holds a persistent MQTT session and reports.

:class:`Agent` wires the collaborators, each with one job, and owns the lifecycle:

- :class:`~flotta.agent.session.MqttSession`: the MQTT client, its subscriptions, the
  connection state and the certificate renewal (a renewed certificate starts a new client);
- :class:`~flotta.agent.inbox.Inbox`: what the control plane sends (desired state, receipts);
- :class:`~flotta.agent.reconciler.Reconciler`: applies the desired state (level-triggered);
- :class:`~flotta.agent.heartbeat.Heartbeat`: workload phases and status reports;
- :class:`~flotta.agent.event_sender.EventSender`: events until their receipts, journalled;
- :class:`~flotta.agent.status_writer.StatusWriter`: the local status file;
- :class:`~flotta.agent.deregistration.Deregistration`: the device was deleted.

Tasks: reconcile, heartbeat (+ local status file), events, telemetry, and per connection the
message consumer and certificate renewal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from flotta.agent import hardware as inventory
from flotta.agent.agent_state import AgentState, Wakeups
from flotta.agent.applying import Applier
from flotta.agent.config import AgentConfig
from flotta.agent.deregistration import Deregistration
from flotta.agent.desired_store import DesiredStore
from flotta.agent.enrolment import enrol
from flotta.agent.event_sender import EventSender
from flotta.agent.events import EventQueue
from flotta.agent.heartbeat import Heartbeat
from flotta.agent.identity import IdentityStore
from flotta.agent.inbox import Inbox
from flotta.agent.osupdate import OsUpdater
from flotta.agent.reconciler import Reconciler
from flotta.agent.renewal import ChildKeys, Renewer
from flotta.agent.runtime import PodmanRuntime
from flotta.agent.session import MqttSession
from flotta.agent.status_writer import StatusWriter
from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.buffer import Flow
from flotta.tasks import TaskSet, wait_first

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class Agent:
    def __init__(self, config: AgentConfig, *, runtime: PodmanRuntime | None = None) -> None:
        self.config = config
        self.device_id = config.resolved_device_id()
        self.identity = IdentityStore(config.identity_dir, self.device_id)
        self.store = DesiredStore(config.state_dir)
        self.runtime = runtime or PodmanRuntime.from_url(
            config.podman_socket, files_root=config.files_root
        )
        self.events = EventQueue(
            config.event_queue,
            resend_after=config.telemetry_resend_seconds,
            window=config.telemetry_receipt_window,
            receipts=config.telemetry_receipts,
        )
        self.applier = Applier(self.runtime, self.events, state_dir=config.state_dir)
        self.renewer = Renewer(
            self.identity, fraction=config.renew_at_fraction, keys=ChildKeys(self.identity)
        )
        self.osupdater = OsUpdater(
            config.state_dir / "osupdate",
            rpm_ostree=config.rpm_ostree,
            reboot_command=config.reboot_command,
            gpg_verify=config.ostree_gpg_verify,
            gpg_keypath=config.ostree_gpg_keypath,
        )
        self.state = AgentState()
        self.wakeups = Wakeups()
        self.exit_code = 0
        self._tasks = TaskSet("agent", self._task_failed)

        self.inbox = Inbox(
            self.device_id,
            self.state,
            self.wakeups,
            store=self.store,
            events=self.events,
            renewer=self.renewer,
            write_status=self._write_status,
        )
        self.session = MqttSession(
            config,
            self.identity,
            self.state,
            self.renewer,
            handle=self.inbox.handle,
            on_online=self._on_online,
            on_offline=self._write_status,
            on_task_failure=self._task_failed,
        )
        self.event_sender = EventSender(
            self.device_id,
            self.events,
            self.state,
            self.session,
            self.wakeups.events,
            state_dir=config.state_dir,
        )
        self.status_writer = StatusWriter(
            config, self.device_id, self.state, self.events, self.session, self.event_sender
        )
        self.heartbeat = Heartbeat(
            self.device_id,
            self.state,
            self.wakeups.heartbeat,
            default_period=config.heartbeat_seconds,
            applier=self.applier,
            identity=self.identity,
            osupdater=self.osupdater,
            session=self.session,
            write_status=self._write_status,
        )
        self.deregistration = Deregistration(
            self.state,
            self.wakeups.stop,
            state_dir=config.state_dir,
            applier=self.applier,
            store=self.store,
            identity=self.identity,
            event_sender=self.event_sender,
        )
        self.reconciler = Reconciler(
            self.state,
            self.wakeups,
            resync_seconds=config.resync_seconds,
            identity=self.identity,
            runtime=self.runtime,
            applier=self.applier,
            osupdater=self.osupdater,
            events=self.events,
            write_status=self._write_status,
            deregister=self.deregistration.run,
        )

    # ---- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self.wakeups.stop.set()

    def _task_failed(self, name: str, error: BaseException) -> None:
        """A loop the agent cannot do without ended: stop with a failure (systemd restarts
        the agent; workloads keep running meanwhile)."""
        self.state.last_error = f"task {name} failed: {error}"
        self.exit_code = 1
        self.wakeups.stop.set()

    async def run(self) -> int:
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.event_sender.resume()
        self.state.desired = self.store.load()
        if self.state.desired is not None:
            log.info("re-applying the persisted desired state %s", self.state.desired.version)
            self.wakeups.reconcile.set()  # at once, before and without any connection
        self._tasks.start("reconcile", self.reconciler.run())
        self._tasks.start("heartbeat", self.heartbeat.run())
        try:
            await self._until_stopped(self._main())
        finally:
            await self._shutdown()
        return self.exit_code

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        main, _ = await wait_first(
            asyncio.create_task(work, name="agent-main"),
            asyncio.create_task(self.wakeups.stop.wait(), name="agent-stop"),
        )
        error = None if main.cancelled() else main.exception()
        if error is not None:
            raise error

    async def _main(self) -> None:
        if not self._identity_usable():
            self.state.phase = "enrolling"
            self._write_status()
            hardware = await asyncio.to_thread(inventory.collect)
            await enrol(self.config, self.identity, hardware)
            self.wakeups.reconcile.set()  # secrets can be opened now
        self.state.phase = "running"
        self._start_telemetry()
        self._tasks.start("events", self.event_sender.run())
        while not self.wakeups.stop.is_set():
            await self.session.run_until_renewed()

    def _identity_usable(self) -> bool:
        if not self.identity.has_certificate():
            return False
        status = self.identity.status()
        if status is None or status.not_after <= datetime.now(UTC):
            log.warning("the device certificate has expired: enrolling again")
            return False
        return True

    async def _shutdown(self) -> None:
        state = self.state
        await self.session.stop_tasks()
        await self._tasks.stop_all()
        await self.session.close(say_goodbye=state.phase != "deregistered")
        if state.telemetry is not None:
            await state.telemetry.close()
        if state.phase != "deregistered":
            state.phase = "stopped"
        self._write_status()
        self.event_sender.close_journal()

    # ---- wiring ----------------------------------------------------------------------------

    def _write_status(self) -> None:
        self.status_writer.write()

    def _on_online(self) -> None:
        """Connected, subscribed and announced: report, and send what waited."""
        self.wakeups.heartbeat.set()
        self.events.restart_resend_clocks(time.monotonic())
        self.wakeups.events.set()
        if self.state.telemetry is not None:
            self.state.telemetry.connection_restored()
        self._write_status()

    def _start_telemetry(self) -> None:
        config, state = self.config, self.state
        state.telemetry = TelemetryService(
            config.state_dir / "telemetry",
            self.device_id,
            max_bytes=config.telemetry_max_mib * MiB,
            log_source=self.runtime.logs,
            flow=Flow(
                resend_after=config.telemetry_resend_seconds,
                window=config.telemetry_receipt_window,
            )
            if config.telemetry_receipts
            else None,
        )
        if state.desired is not None:
            state.telemetry.configure(
                state.desired.configuration, state.desired.workloads, state.endpoints
            )
        self._tasks.start("telemetry", state.telemetry.run(self.session.publish))

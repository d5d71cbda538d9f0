"""The agent daemon: re-applies the persisted desired state at once (offline or not), enrols
when it has no certificate, then holds a persistent MQTT session and reports.

Tasks: reconcile (level-triggered), heartbeat (+ local status file), events, telemetry, and
per connection the message consumer and certificate renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from flotta.agent import hardware as inventory
from flotta.agent.applying import Applier
from flotta.agent.config import AgentConfig
from flotta.agent.contract import ConnectionState, DesiredState, StatusReport, decode, encode
from flotta.agent.contract.desired import HeartbeatConfiguration
from flotta.agent.contract.hardware import Hardware
from flotta.agent.contract.status import TelemetryBuffer
from flotta.agent.contract.telemetry import TelemetryReceipt
from flotta.agent.desired_store import DesiredStore
from flotta.agent.endpoints import workload_endpoints
from flotta.agent.enrolment import enrol
from flotta.agent.errors import StateStoreError
from flotta.agent.event_journal import JOURNAL_FILE, EventJournal, EventJournalError
from flotta.agent.events import EventQueue, new_event
from flotta.agent.identity import IdentityStore
from flotta.agent.osupdate import OsUpdater
from flotta.agent.renewal import ChildKeys, Renewer
from flotta.agent.reporting import HardwareTracker, period_seconds, utc, workload_reports
from flotta.agent.runtime import (
    PodmanRuntime,
    PodmanUnreachableError,
    WorkloadRuntimeError,
    WorkloadState,
)
from flotta.agent.status_file import LocalStatus, WorkloadLine, write_status
from flotta.agent.tasks import TaskSet
from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.buffer import Flow
from flotta.agent.unsealing import OpenedItems, UnsealingError, open_in_child, sealed_items
from flotta.mqtt import Message, MqttClient, MqttError, MqttSettings, TlsFiles, Will
from flotta.schemas.errors import ContractError
from flotta.schemas.topics import DeviceTopic, device_topic

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
MiB = 1024 * 1024
RENEWAL_TIMEOUT = 60.0
RENEWAL_RETRY = 300.0
PODMAN_RETRY = 5.0
EVENTS_IDLE_CHECK = 10.0  # seconds between looks at the event queue when nothing wakes it


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
        self.hardware = HardwareTracker()
        self.renewer = Renewer(
            self.identity, fraction=config.renew_at_fraction, keys=ChildKeys(self.identity)
        )
        self.osupdater = OsUpdater(
            config.state_dir / "osupdate",
            rpm_ostree=config.rpm_ostree,
            reboot_command=config.reboot_command,
        )
        self.event_journal: EventJournal | None = None
        self.telemetry: TelemetryService | None = None
        self.desired: DesiredState | None = None
        self.applied_version = ""
        self.failures: dict[str, str] = {}
        self.states: dict[str, WorkloadState] = {}
        self.bad_payloads = 0
        self.bad_receipts = 0
        self.phase = "starting"
        self.exit_code = 0
        self._client: MqttClient | None = None
        self._unsealed: tuple[str, OpenedItems] | None = None  # per desired version
        self._last_connected = ""
        self._last_error = ""
        self._subscribed = False
        self._endpoints: dict[str, str] = {}
        self._tasks = TaskSet("agent", self._task_failed)
        self._session_tasks = TaskSet("agent-session", self._task_failed)
        self._wake_reconcile = asyncio.Event()
        self._wake_heartbeat = asyncio.Event()
        self._wake_events = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._stop = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def _task_failed(self, name: str, error: BaseException) -> None:
        """A loop the agent cannot do without ended: stop with a failure (systemd restarts
        the agent; workloads keep running meanwhile)."""
        self._last_error = f"task {name} failed: {error}"
        self.exit_code = 1
        self._stop.set()

    async def run(self) -> int:
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._resume_events()
        self.desired = self.store.load()
        if self.desired is not None:
            log.info("re-applying the persisted desired state %s", self.desired.version)
            self._wake_reconcile.set()  # at once, before and without any connection
        self._tasks.start("reconcile", self._reconcile_forever())
        self._tasks.start("heartbeat", self._heartbeat_forever())
        try:
            await self._until_stopped(self._main())
        finally:
            await self._shutdown()
        return self.exit_code

    def _resume_events(self) -> None:
        """Events an earlier run kept until their receipts: sent again (JetStream drops copies
        it holds). Without a usable journal the agent goes on, its events kept in memory."""
        try:
            journal, saved = EventJournal.open(self.config.state_dir / JOURNAL_FILE)
        except EventJournalError as exc:
            self._last_error = str(exc)
            log.error("%s: events are kept in memory only", exc)
            return
        self.event_journal = journal
        self.events.resume(saved.stream, saved.next_sequence, saved.events, journal)
        if saved.events:
            log.info("%d events kept by the last run wait to be sent", len(saved.events))

    def _close_event_journal(self) -> None:
        journal, self.event_journal = self.event_journal, None
        if journal is not None:
            self.events.detach()
            journal.close()

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        main = asyncio.create_task(work, name="agent-main")
        stop = asyncio.create_task(self._stop.wait(), name="agent-stop")
        try:
            await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (main, stop):
                task.cancel()
            await asyncio.gather(main, stop, return_exceptions=True)
        error = None if main.cancelled() else main.exception()
        if error is not None:
            raise error

    async def _main(self) -> None:
        if not self._identity_usable():
            self.phase = "enrolling"
            self._write_status()
            hardware = await asyncio.to_thread(inventory.collect)
            await enrol(self.config, self.identity, hardware)
            self._wake_reconcile.set()  # secrets can be opened now
        self.phase = "running"
        self._start_telemetry()
        self._tasks.start("events", self._events_forever())
        while not self._stop.is_set():
            await self._session()

    def _identity_usable(self) -> bool:
        if not self.identity.has_certificate():
            return False
        status = self.identity.status()
        if status is None or status.not_after <= datetime.now(UTC):
            log.warning("the device certificate has expired: enrolling again")
            return False
        return True

    async def _shutdown(self) -> None:
        await self._session_tasks.stop_all()
        await self._tasks.stop_all()
        client, self._client = self._client, None
        if client is not None:
            if client.connected and self.phase != "deregistered":
                with contextlib.suppress(MqttError, TimeoutError):
                    await asyncio.wait_for(self._publish_connection(client, "agent stopped"), 5)
            await client.close()
        if self.telemetry is not None:
            await self.telemetry.close()
        if self.phase != "deregistered":
            self.phase = "stopped"
        self._write_status()
        self._close_event_journal()

    # ---- MQTT session ----------------------------------------------------------------------

    def _settings(self) -> MqttSettings:
        will = ConnectionState(
            state="offline",
            time=datetime.now(UTC),
            applied_version=self.applied_version,
            agent_version=AGENT_VERSION,
            reason="connection lost",
        )
        return MqttSettings(
            host=self.config.broker_host,
            port=self.config.broker_port,
            client_id=self.device_id,
            tls=TlsFiles(
                self.identity.ca_path,
                self.identity.cert_path,
                self.identity.key_path,
                check_hostname=self.config.check_hostname,
            ),
            keepalive=self.config.keepalive_seconds,
            will=Will(self._topic(DeviceTopic.CONNECTION), encode(will), qos=1, retain=True),
            reconnect_base=self.config.reconnect_base_seconds,
            reconnect_cap=self.config.reconnect_cap_seconds,
        )

    async def _session(self) -> None:
        """One MQTT client with the current certificate, until a renewal or a stop."""
        self._reconnect.clear()
        client = MqttClient(
            self._settings(),
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            manual_ack=True,
        )
        self._client = client
        self._subscribed = False
        await client.start()
        self._session_tasks.start("consume", self._consume(client))
        self._session_tasks.start("renewal", self._renew_when_due(client))
        await self._reconnect.wait()
        await self._session_tasks.stop_all()
        self._client = None
        await client.close()
        log.info("reconnecting with the renewed certificate")

    async def _on_connected(self, session_present: bool) -> None:
        client = self._client
        if client is None:
            return
        self._last_connected = utc(datetime.now(UTC))
        self._last_error = ""
        if not (session_present and self._subscribed):
            await client.subscribe(
                [
                    (self._topic(DeviceTopic.DESIRED), 1),
                    (self._topic(DeviceTopic.CERTIFICATE), 1),
                    (self._topic(DeviceTopic.RECEIPTS), 1),
                ]
            )
            self._subscribed = True
        await self._publish_connection(client, "")
        self._wake_heartbeat.set()
        self.events.restart_resend_clocks(time.monotonic())
        self._wake_events.set()
        if self.telemetry is not None:
            self.telemetry.connection_restored()
        self._write_status()

    async def _on_disconnected(self, reason: str) -> None:
        self._last_error = reason
        log.warning("MQTT connection lost: %s", reason)
        self._write_status()

    async def _publish_connection(self, client: MqttClient, reason: str) -> None:
        state = ConnectionState(
            state="offline" if reason else "online",
            time=datetime.now(UTC),
            applied_version=self.applied_version,
            agent_version=AGENT_VERSION,
            reason=reason,
        )
        await client.publish(self._topic(DeviceTopic.CONNECTION), encode(state), qos=1, retain=True)

    async def _consume(self, client: MqttClient) -> None:
        async for message in client.messages():
            try:
                self._handle(message)
            except Exception:  # a message the checks did not foresee costs itself, no more
                self.bad_payloads += 1
                log.exception("a message on %r could not be handled", message.topic[:200])
            client.ack(message)

    def _handle(self, message: Message) -> None:
        if message.topic == self._topic(DeviceTopic.DESIRED):
            self.accept_desired(message.payload)
        elif message.topic == self._topic(DeviceTopic.CERTIFICATE):
            self.renewer.deliver(message.payload)
        elif message.topic == self._topic(DeviceTopic.RECEIPTS):
            self._receipt(message.payload)

    def _receipt(self, payload: bytes) -> None:
        """Events' receipts are taken here; metrics' and logs' go to the telemetry service."""
        try:
            receipt = decode(TelemetryReceipt, payload)
        except ContractError as exc:
            self.bad_receipts += 1
            log.warning("rejected a receipt: %s", exc)
            return
        if receipt.kind == "events":
            if self.events.confirm(receipt.stream, receipt.sequences):
                self._wake_events.set()  # the window has room again
        elif self.telemetry is not None:
            self.telemetry.take_receipt(receipt)

    def accept_desired(self, payload: bytes) -> bool:
        """Decode, persist, then act; a bad payload is counted and never replaces the last
        good state."""
        if not payload:
            log.info("the retained desired state was cleared")
            return False
        try:
            state = decode(DesiredState, payload)
            if state.device_id != self.device_id:
                raise ContractError(f"desired state is for {state.device_id!r}")
        except ContractError as exc:
            self.bad_payloads += 1
            log.warning("rejected a desired state payload: %s", exc)
            self.events.put(new_event("InvalidDesiredState", str(exc), type_="Warning"))
            self._wake_events.set()
            self._write_status()
            return False
        if self.desired is not None and state.version and state.version == self.desired.version:
            return False
        try:
            self.store.save(payload)
        except StateStoreError as exc:
            log.error("%s; acting on it from memory", exc)
            self.events.put(new_event("StateNotPersisted", str(exc), type_="Warning"))
        log.info("new desired state %s (%d workloads)", state.version, len(state.workloads))
        self.desired = state
        self._wake_reconcile.set()
        return True

    # ---- reconciling -----------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        delay = self.config.resync_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_reconcile.wait(), delay)
            self._wake_reconcile.clear()
            delay = self.config.resync_seconds
            desired = self.desired
            if desired is None:
                continue  # nothing known yet: leave whatever runs alone
            if desired.deregister:
                await self._deregister()
                return
            try:
                await self._reconcile(desired)
            except WorkloadRuntimeError as exc:  # unreachable, or a pod changed meanwhile
                self._last_error = str(exc)
                log.warning("reconcile: %s; retrying in %.0f s", exc, PODMAN_RETRY)
                delay = PODMAN_RETRY

    async def _reconcile(self, desired: DesiredState) -> None:
        outcome = await self.applier.apply(desired, await self._opened(desired))
        self.failures = outcome.failures
        self.states = await self.applier.phases()
        if self.telemetry is not None:
            endpoints = await workload_endpoints(self.runtime, desired.workloads)
            if endpoints != self._endpoints or desired.version != self.applied_version:
                self._endpoints = endpoints
                self.telemetry.configure(desired.configuration, desired.workloads, endpoints)
        if desired.version != self.applied_version:
            self.applied_version = desired.version
            log.info("applied desired state %s", desired.version)
            for event in await self.osupdater.reconcile(desired.configuration.os):
                self.events.put(event)
            self._wake_heartbeat.set()
        if outcome.changed or outcome.failures:
            self._wake_events.set()
        self._write_status()

    async def _opened(self, desired: DesiredState) -> OpenedItems:
        """The sealed items of ``desired``, opened once per version (in a child process)."""
        if self._unsealed is not None and self._unsealed[0] == desired.version:
            return self._unsealed[1]
        items = sealed_items(desired)
        try:
            opened = await open_in_child(self.identity.key_path, self.device_id, items)
        except UnsealingError as exc:
            log.error("sealed secrets not opened: %s", exc)
            return OpenedItems.failed(items, str(exc))
        self._unsealed = (desired.version, opened)
        return opened

    async def _deregister(self) -> None:
        log.warning("the device was deleted: removing its workloads, data and identity")
        while True:
            try:
                await self.applier.remove_all()
                break
            except PodmanUnreachableError as exc:
                log.warning("%s; retrying the removal in %.0f s", exc, PODMAN_RETRY)
                await asyncio.sleep(PODMAN_RETRY)
        if self.telemetry is not None:
            await self.telemetry.close()
            self.telemetry = None
        self._close_event_journal()
        self.store.erase()
        for directory in ("workloads", "telemetry", "events", "osupdate"):
            await asyncio.to_thread(shutil.rmtree, self.config.state_dir / directory, True)
        self.identity.erase()
        self.desired = None
        self.applied_version = ""
        self.states = {}
        self.phase = "deregistered"
        self._stop.set()

    # ---- reporting -------------------------------------------------------------------------

    async def _heartbeat_forever(self) -> None:
        while True:
            try:
                self.states = await self.applier.phases()
            except WorkloadRuntimeError as exc:  # keep the last known phases
                log.info("workload phases not read: %s", exc)
            self._write_status()
            client = self._client
            if client is not None and client.connected:
                try:
                    await self._publish_heartbeat(client)
                except MqttError as exc:
                    log.info("heartbeat not delivered: %s", exc)
            period = period_seconds(self.desired, self.config.heartbeat_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_heartbeat.wait(), period)
            self._wake_heartbeat.clear()

    def status_report(self, hardware: Hardware) -> tuple[StatusReport, bool]:
        configuration = self.desired.configuration if self.desired is not None else None
        heartbeat = configuration.heartbeat if configuration is not None else None
        hardware_report = self.hardware.report(hardware, heartbeat or HeartbeatConfiguration())
        certificate = self.identity.status()
        stats = self.telemetry.stats() if self.telemetry is not None else None
        report = StatusReport(
            time=datetime.now(UTC),
            applied_version=self.applied_version,
            heartbeat_period_seconds=period_seconds(self.desired, self.config.heartbeat_seconds),
            workloads=workload_reports(self.desired, self.states, self.failures),
            hardware=hardware_report,
            upgrade=self.osupdater.report(),
            telemetry=TelemetryBuffer(
                buffered_records=stats.buffered_records, dropped_records=stats.dropped_records
            )
            if stats is not None
            else None,
            certificate_not_after=certificate.not_after if certificate is not None else None,
        )
        return report, hardware_report is not None

    async def _publish_heartbeat(self, client: MqttClient) -> None:
        hardware = await asyncio.to_thread(inventory.collect)
        report, with_hardware = self.status_report(hardware)
        await client.publish(self._topic(DeviceTopic.STATUS), encode(report), qos=1)
        if with_hardware:
            self.hardware.confirm(hardware)

    async def _events_forever(self) -> None:
        while True:
            client = self._client
            while client is not None and client.connected:
                due = self.events.next_to_send(time.monotonic())
                if due is None:
                    break
                key, event = due
                try:
                    await client.publish(self._topic(DeviceTopic.EVENTS), encode(event), qos=1)
                except MqttError:
                    break
                self.events.sent(key, time.monotonic())
            resend_in = self.events.next_due(time.monotonic())
            wait = EVENTS_IDLE_CHECK
            if resend_in is not None:
                wait = min(wait, max(resend_in, 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_events.wait(), wait)
            self._wake_events.clear()

    def _write_status(self) -> None:
        stats = self.telemetry.stats() if self.telemetry is not None else None
        reports = workload_reports(self.desired, self.states, self.failures)
        status = LocalStatus(
            device_id=self.device_id,
            pid=os.getpid(),
            updated=utc(datetime.now(UTC)),
            broker=self.config.broker_url,
            phase=self.phase,
            connected=self._client is not None and self._client.connected,
            last_connected=self._last_connected,
            last_error=self._last_error,
            desired_version=self.desired.version if self.desired is not None else "",
            applied_version=self.applied_version,
            workloads=[WorkloadLine(r.name, r.phase, r.message) for r in reports],
            telemetry_buffered=stats.buffered_records if stats is not None else 0,
            telemetry_dropped=stats.dropped_records if stats is not None else 0,
            telemetry_unconfirmed=stats.unconfirmed_batches if stats is not None else 0,
            telemetry_resent=(
                self.telemetry.counters.batches_resent if self.telemetry is not None else 0
            ),
            events_pending=len(self.events),
            events_dropped=self.events.dropped,
            events_unconfirmed=self.events.unconfirmed,
            events_resent=self.events.resent,
            events_not_saved=(
                self.event_journal.write_errors if self.event_journal is not None else 0
            ),
            bad_desired_payloads=self.bad_payloads,
            bad_receipts=self.bad_receipts,
        )
        try:
            write_status(self.config.state_dir, status)
        except OSError as exc:
            log.warning("cannot write the local status file: %s", exc)

    # ---- renewal and telemetry -------------------------------------------------------------

    async def _renew_when_due(self, client: MqttClient) -> None:
        topic = self._topic(DeviceTopic.CSR)

        async def publish(payload: bytes) -> None:
            await client.publish(topic, payload, qos=1)

        while True:
            delay = self.renewer.due()
            if delay > 0:
                await asyncio.sleep(min(delay, 3600.0))
                continue
            await client.wait_connected()
            try:
                renewed = await self.renewer.renew(publish, answer_within=RENEWAL_TIMEOUT)
            except MqttError as exc:
                log.info("certificate renewal not sent: %s", exc)
                renewed = None
            if renewed is not None:
                self._reconnect.set()
                return
            await asyncio.sleep(RENEWAL_RETRY)

    def _start_telemetry(self) -> None:
        self.telemetry = TelemetryService(
            self.config.state_dir / "telemetry",
            self.device_id,
            max_bytes=self.config.telemetry_max_mib * MiB,
            log_source=self.runtime.logs,
            flow=Flow(
                resend_after=self.config.telemetry_resend_seconds,
                window=self.config.telemetry_receipt_window,
            )
            if self.config.telemetry_receipts
            else None,
        )
        if self.desired is not None:
            self.telemetry.configure(
                self.desired.configuration, self.desired.workloads, self._endpoints
            )
        self._tasks.start("telemetry", self.telemetry.run(self._publish_telemetry))

    async def _publish_telemetry(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            raise MqttError("no MQTT client yet")
        await client.publish(topic, payload, qos=1)

    def _topic(self, kind: DeviceTopic) -> str:
        return device_topic(self.device_id, kind)

"""The heartbeat: every period (or when woken) the workloads' phases are read, the local status
file is written and, while connected, a status report is published."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flotta.agent import hardware as inventory
from flotta.agent.agent_state import AgentState
from flotta.agent.applying import Applier
from flotta.agent.identity import IdentityStore
from flotta.agent.osupdate import OsUpdater
from flotta.agent.reporting import HardwareTracker, period_seconds, workload_reports
from flotta.agent.runtime import WorkloadRuntimeError
from flotta.agent.session import MqttSession
from flotta.mqtt import MqttClient, MqttError
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import Hardware, HeartbeatConfiguration, StatusReport, TelemetryBuffer

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        device_id: str,
        state: AgentState,
        wake: asyncio.Event,
        *,
        default_period: int,
        applier: Applier,
        identity: IdentityStore,
        osupdater: OsUpdater,
        session: MqttSession,
        write_status: Callable[[], None],
    ) -> None:
        self._state = state
        self._wake = wake
        self._default_period = default_period
        self._applier = applier
        self._identity = identity
        self._osupdater = osupdater
        self._session = session
        self._write_status = write_status
        self._topic = device_topic(device_id, DeviceTopic.STATUS)
        self.hardware = HardwareTracker()

    async def run(self) -> None:
        state = self._state
        while True:
            try:
                state.states = await self._applier.phases()
            except WorkloadRuntimeError as exc:  # keep the last known phases
                log.info("workload phases not read: %s", exc)
            self._write_status()
            client = self._session.client
            if client is not None and client.connected:
                try:
                    await self._publish(client)
                except MqttError as exc:
                    log.info("heartbeat not delivered: %s", exc)
            period = period_seconds(state.desired, self._default_period)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)
            self._wake.clear()

    def status_report(self, hardware: Hardware) -> tuple[StatusReport, bool]:
        """The report for ``hardware`` as collected now, and whether it carries hardware."""
        state = self._state
        configuration = state.desired.configuration if state.desired is not None else None
        heartbeat = configuration.heartbeat if configuration is not None else None
        hardware_report = self.hardware.report(hardware, heartbeat or HeartbeatConfiguration())
        certificate = self._identity.status()
        stats = state.telemetry.stats() if state.telemetry is not None else None
        report = StatusReport(
            time=datetime.now(UTC),
            applied_version=state.applied_version,
            applying_version=state.applying_version,
            waiting_version=state.waiting_version,
            window_opens=state.window_opens if state.waiting_version else None,
            failed=state.failed,
            heartbeat_period_seconds=period_seconds(state.desired, self._default_period),
            workloads=workload_reports(
                state.running or state.desired, state.states, state.failures
            ),
            hardware=hardware_report,
            upgrade=self._osupdater.report(),
            telemetry=TelemetryBuffer(
                buffered_records=stats.buffered_records, dropped_records=stats.dropped_records
            )
            if stats is not None
            else None,
            certificate_not_after=certificate.not_after if certificate is not None else None,
        )
        return report, hardware_report is not None

    async def _publish(self, client: MqttClient) -> None:
        hardware = await asyncio.to_thread(inventory.collect)
        report, with_hardware = self.status_report(hardware)
        await client.publish(self._topic, encode(report), qos=1)
        if with_hardware:
            self.hardware.confirm(hardware)

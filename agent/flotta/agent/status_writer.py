"""The local status file (``flotta agent status`` reads it), written from what the agent knows
now. Building the status is pure; only :meth:`StatusWriter.write` touches the disk."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from flotta.agent.agent_state import AgentState
from flotta.agent.config import AgentConfig
from flotta.agent.event_sender import EventSender
from flotta.agent.events import EventQueue
from flotta.agent.reporting import utc, workload_reports
from flotta.agent.session import MqttSession
from flotta.agent.status_file import LocalStatus, WorkloadLine, write_status

log = logging.getLogger(__name__)


def local_status(
    state: AgentState,
    events: EventQueue,
    *,
    device_id: str,
    broker: str,
    connected: bool,
    events_not_saved: int,
    pid: int,
    now: datetime,
) -> LocalStatus:
    telemetry = state.telemetry
    stats = telemetry.stats() if telemetry is not None else None
    reports = workload_reports(state.running or state.desired, state.states, state.failures)
    return LocalStatus(
        device_id=device_id,
        pid=pid,
        updated=utc(now),
        broker=broker,
        phase=state.phase,
        connected=connected,
        last_connected=state.last_connected,
        last_error=state.last_error,
        desired_version=state.desired.version if state.desired is not None else "",
        applied_version=state.applied_version,
        applying_version=state.applying_version,
        waiting_version=state.waiting_version,
        failed_version=state.failed.version if state.failed is not None else "",
        failed_reason=state.failed.reason if state.failed is not None else "",
        rolled_back=state.failed.rolled_back if state.failed is not None else False,
        workloads=[WorkloadLine(r.name, r.phase, r.message) for r in reports],
        telemetry_buffered=stats.buffered_records if stats is not None else 0,
        telemetry_dropped=stats.dropped_records if stats is not None else 0,
        telemetry_unconfirmed=stats.unconfirmed_batches if stats is not None else 0,
        telemetry_resent=telemetry.counters.batches_resent if telemetry is not None else 0,
        events_pending=len(events),
        events_dropped=events.dropped,
        events_unconfirmed=events.unconfirmed,
        events_resent=events.resent,
        events_not_saved=events_not_saved,
        bad_desired_payloads=state.bad_payloads,
        bad_receipts=state.bad_receipts,
    )


class StatusWriter:
    def __init__(
        self,
        config: AgentConfig,
        device_id: str,
        state: AgentState,
        events: EventQueue,
        session: MqttSession,
        event_sender: EventSender,
    ) -> None:
        self._config = config
        self._device_id = device_id
        self._state = state
        self._events = events
        self._session = session
        self._event_sender = event_sender

    def write(self) -> None:
        status = local_status(
            self._state,
            self._events,
            device_id=self._device_id,
            broker=self._config.broker_url,
            connected=self._session.connected,
            events_not_saved=self._event_sender.journal_write_errors,
            pid=os.getpid(),
            now=datetime.now(UTC),
        )
        try:
            write_status(self._config.state_dir, status)
        except OSError as exc:
            log.warning("cannot write the local status file: %s", exc)

"""The device's events, delivered: sent over MQTT while connected, sent again until the
bridge's receipt, and kept in a journal so that a restart sends what was not confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from flotta.agent.agent_state import AgentState
from flotta.agent.event_journal import JOURNAL_FILE, EventJournal, EventJournalError
from flotta.agent.events import EventQueue
from flotta.agent.session import MqttSession
from flotta.mqtt import MqttError
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic

log = logging.getLogger(__name__)

EVENTS_IDLE_CHECK = 10.0  # seconds between looks at the event queue when nothing wakes it


class EventSender:
    def __init__(
        self,
        device_id: str,
        events: EventQueue,
        state: AgentState,
        session: MqttSession,
        wake: asyncio.Event,
        *,
        state_dir: Path,
    ) -> None:
        self._events = events
        self._state = state
        self._session = session
        self._wake = wake
        self._journal_path = state_dir / JOURNAL_FILE
        self._topic = device_topic(device_id, DeviceTopic.EVENTS)
        self._journal: EventJournal | None = None

    @property
    def journal_write_errors(self) -> int:
        return self._journal.write_errors if self._journal is not None else 0

    def resume(self) -> None:
        """Events an earlier run kept until their receipts: sent again (JetStream drops copies
        it holds). Without a usable journal the agent goes on, its events kept in memory."""
        try:
            journal, saved = EventJournal.open(self._journal_path)
        except EventJournalError as exc:
            self._state.last_error = str(exc)
            log.error("%s: events are kept in memory only", exc)
            return
        self._journal = journal
        self._events.resume(saved.stream, saved.next_sequence, saved.events, journal)
        if saved.events:
            log.info("%d events kept by the last run wait to be sent", len(saved.events))

    def close_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            self._events.detach()
            journal.close()

    async def run(self) -> None:
        events = self._events
        while True:
            client = self._session.client
            while client is not None and client.connected:
                due = events.next_to_send(time.monotonic())
                if due is None:
                    break
                key, event = due
                try:
                    await client.publish(self._topic, encode(event), qos=1)
                except MqttError:
                    break
                events.sent(key, time.monotonic())
            resend_in = events.next_due(time.monotonic())
            wait = EVENTS_IDLE_CHECK
            if resend_in is not None:
                wait = min(wait, max(resend_in, 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

"""What the control plane sends the device, taken: the desired state (decoded, persisted, then
acted on), a renewed certificate (to the renewer) and receipts (events' here, metrics' and
logs' to the telemetry service). A bad payload is counted and never replaces a good state."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flotta.agent.agent_state import AgentState, Wakeups
from flotta.agent.desired_store import DesiredStore
from flotta.agent.errors import StateStoreError
from flotta.agent.events import EventQueue, new_event
from flotta.agent.renewal import Renewer
from flotta.mqtt import Message
from flotta.schemas.codec import decode
from flotta.schemas.errors import ContractError
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import DesiredState, TelemetryReceipt

log = logging.getLogger(__name__)


class Inbox:
    def __init__(
        self,
        device_id: str,
        state: AgentState,
        wakeups: Wakeups,
        *,
        store: DesiredStore,
        events: EventQueue,
        renewer: Renewer,
        write_status: Callable[[], None],
    ) -> None:
        self._device_id = device_id
        self._state = state
        self._wakeups = wakeups
        self._store = store
        self._events = events
        self._renewer = renewer
        self._write_status = write_status
        self._desired_topic = device_topic(device_id, DeviceTopic.DESIRED)
        self._certificate_topic = device_topic(device_id, DeviceTopic.CERTIFICATE)
        self._receipts_topic = device_topic(device_id, DeviceTopic.RECEIPTS)

    def handle(self, message: Message) -> None:
        if message.topic == self._desired_topic:
            self.accept_desired(message.payload)
        elif message.topic == self._certificate_topic:
            self._renewer.deliver(message.payload)
        elif message.topic == self._receipts_topic:
            self._receipt(message.payload)

    def accept_desired(self, payload: bytes) -> bool:
        """Decode, persist, then act; a bad payload is counted and never replaces the last
        good state."""
        state = self._state
        if not payload:
            log.info("the retained desired state was cleared")
            return False
        try:
            desired = decode(DesiredState, payload)
            if desired.device_id != self._device_id:
                raise ContractError(f"desired state is for {desired.device_id!r}")
        except ContractError as exc:
            state.bad_payloads += 1
            log.warning("rejected a desired state payload: %s", exc)
            self._events.put(new_event("InvalidDesiredState", str(exc), type_="Warning"))
            self._wakeups.events.set()
            self._write_status()
            return False
        known = state.desired
        if (
            known is not None
            and desired.version
            and desired.version == known.version
            and desired.retry == known.retry
        ):
            return False
        try:
            self._store.save(payload)
        except StateStoreError as exc:
            log.error("%s; acting on it from memory", exc)
            self._events.put(new_event("StateNotPersisted", str(exc), type_="Warning"))
        log.info("new desired state %s (%d workloads)", desired.version, len(desired.workloads))
        state.desired = desired
        self._wakeups.reconcile.set()
        return True

    def _receipt(self, payload: bytes) -> None:
        """Events' receipts are taken here; metrics' and logs' go to the telemetry service."""
        try:
            receipt = decode(TelemetryReceipt, payload)
        except ContractError as exc:
            self._state.bad_receipts += 1
            log.warning("rejected a receipt: %s", exc)
            return
        if receipt.kind == "events":
            if self._events.confirm(receipt.stream, receipt.sequences):
                self._wakeups.events.set()  # the window has room again
        elif self._state.telemetry is not None:
            self._state.telemetry.take_receipt(receipt)

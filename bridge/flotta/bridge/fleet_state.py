"""Everything the bridge holds about the fleet, and the decisions over it. Pure: the I/O
adapters feed it API objects and device reports, and ask it what to write.

For every EdgeDevice: its context (from the watch), the status the bridge wants (``current``)
and the status it last wrote (``written``). A visible difference between the two queues a
write in the :class:`~flotta.bridge.coalescer.WriteCoalescer`; a stale last-seen time queues
a refresh. Missed heartbeats come from the :class:`~flotta.bridge.liveness.LivenessTracker`.

A will (the broker saw the device's connection break) makes the device Offline only if no birth
or heartbeat follows within ``offline_grace`` seconds (at most its missed-heartbeat window). A
broker restart sends the will of every connected device while it shuts down (Mosquitto 2.0
does), and a flapping link sends one per flap: marking those devices Offline and Online again
would write every EdgeDevice twice while nothing a user should act on happened.

Missed heartbeats count in the heartbeat period the device was *told*: the operator records
it in ``status.desiredHeartbeatPeriodSeconds`` next to ``desiredVersion`` (the device's own
spec, else its EdgeDeviceSet's, else the default). The period a device claims in its
heartbeats is not used: a device that leaves it out, or claims a longer one, would otherwise
be declared Offline only after three claimed periods. Until the operator has recorded a period
(a device that never got a desired state, or a status written by an operator older than the
field), the default of 60 seconds applies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flotta.bridge.coalescer import REFRESH_PERIODS, WriteCoalescer, refresh_due
from flotta.bridge.device_status import (
    DEFAULT_HEARTBEAT_PERIOD,
    ONLINE,
    UNKNOWN,
    DeviceContext,
    DeviceStatus,
    from_api,
    on_connection,
    on_context,
    on_disconnected,
    on_heartbeat,
    on_missed_heartbeats,
    status_patch,
    urgent_change,
    visible_changes,
)
from flotta.bridge.liveness import LivenessTracker
from flotta.bridge.report_order import is_stale
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.status import StatusReport

OFFLINE_GRACE = 30.0  # seconds: the time 10,000 devices have to come back after a broker restart


@dataclass(slots=True)
class DeviceRecord:
    context: DeviceContext
    current: DeviceStatus
    written: DeviceStatus
    last_report: datetime | None = None
    disconnected: bool = False  # a will came, and no birth or heartbeat since

    @property
    def period(self) -> float:
        """Seconds: the heartbeat period the device was told."""
        return self.context.heartbeat_period


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    device_id: str
    namespace: str
    status: DeviceStatus
    patch: dict[str, Any]


def context_of(obj: dict[str, Any]) -> DeviceContext:
    """The context of an EdgeDevice API object."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return DeviceContext(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        generation=int(metadata.get("generation") or 0),
        desired_version=str(status.get("desiredVersion") or ""),
        heartbeat_period=told_period(status.get("desiredHeartbeatPeriodSeconds")),
        uid=str(metadata.get("uid", "")),
    )


def told_period(value: Any) -> float:
    """Seconds: the heartbeat period recorded in an EdgeDevice status, or the default when
    none (or nothing usable) is recorded."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_HEARTBEAT_PERIOD


class Fleet:
    def __init__(
        self,
        writes: WriteCoalescer[str],
        *,
        refresh_periods: float = REFRESH_PERIODS,
        liveness: LivenessTracker[str] | None = None,
        offline_grace: float = OFFLINE_GRACE,
    ) -> None:
        self.writes = writes
        self.liveness: LivenessTracker[str] = liveness or LivenessTracker()
        self.refresh_periods = refresh_periods
        self.offline_grace = offline_grace
        self._devices: dict[str, DeviceRecord] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def device_ids(self) -> list[str]:
        return list(self._devices)

    def context(self, device_id: str) -> DeviceContext | None:
        record = self._devices.get(device_id)
        return record.context if record is not None else None

    def record(self, device_id: str) -> DeviceRecord | None:
        return self._devices.get(device_id)

    # ---- the API side -----------------------------------------------------------------------

    def observed(self, obj: dict[str, Any], now: datetime, mono: float) -> None:
        """An EdgeDevice was listed, added or modified."""
        context = context_of(obj)
        seen = from_api(obj.get("status"))
        record = self._devices.get(context.name)
        if record is None or record.context.namespace != context.namespace:
            record = DeviceRecord(context, seen, seen)
            self._devices[context.name] = record
            if seen.phase == ONLINE:
                self.liveness.heard(context.name, record.period, mono)
            if context.desired_version or seen.phase == ONLINE:
                record.current = on_context(seen, context, now)
                self._evaluate(record, now, mono)
            return
        foreign = seen.foreign_conditions
        record.current = replace(record.current, foreign_conditions=foreign)
        if seen.phase == UNKNOWN and record.written.phase != UNKNOWN:
            # The operator marked the device Unknown while no bridge was alive: the API holds
            # that, not what this bridge wrote last, so the next status goes out again. (Only
            # that phase: an older event of the bridge's own writes, arriving late, must not
            # make it write again.)
            record.written = replace(record.written, phase=seen.phase, conditions=seen.conditions)
            self._evaluate(record, now, mono)
        if record.context != context:
            record.context = context
            record.current = on_context(record.current, context, now)
            self._evaluate(record, now, mono)

    def deleted(self, device_id: str) -> None:
        self._devices.pop(device_id, None)
        self.liveness.forget(device_id)
        self.writes.forget(device_id)

    # ---- the device side ---------------------------------------------------------------------

    def heartbeat(self, device_id: str, report: StatusReport, now: datetime, mono: float) -> bool:
        """Apply a heartbeat; False if it is older than one already applied (the device was
        heard all the same)."""
        record = self._devices.get(device_id)
        if record is None:
            return False
        if is_stale(report.time, record.last_report, now):
            if record.current.phase == ONLINE:
                self.liveness.heard(device_id, record.period, mono)
            return False
        record.last_report = report.time
        record.disconnected = False
        record.current = on_heartbeat(record.current, report, record.context, now)
        self.liveness.heard(device_id, record.period, mono)
        self._evaluate(record, now, mono)
        return True

    def connection(
        self, device_id: str, message: ConnectionState, now: datetime, mono: float
    ) -> None:
        record = self._devices.get(device_id)
        if record is None:
            return
        if message.state == "online":
            record.disconnected = False
            self.liveness.heard(device_id, record.period, mono)
        else:
            grace = min(self.offline_grace, self.liveness.missed_periods * record.period)
            if grace > 0:
                record.disconnected = True
                self.liveness.expect_by(device_id, mono + grace)
                return
            self.liveness.forget(device_id)
        record.current = on_connection(record.current, message, record.context, now)
        self._evaluate(record, now, mono)

    def tick(self, now: datetime, mono: float) -> list[str]:
        """Mark offline the devices that missed their heartbeats, or whose will is older than
        the grace; their ids."""
        silent = []
        for device_id in self.liveness.expired(mono):
            record = self._devices.get(device_id)
            if record is None:
                continue
            if record.disconnected:
                record.disconnected = False
                record.current = on_disconnected(record.current, record.context, now)
            elif record.current.phase == ONLINE:
                record.current = on_missed_heartbeats(record.current, record.context, now)
            else:
                continue
            self._evaluate(record, now, mono)
            silent.append(device_id)
        return silent

    def _evaluate(self, record: DeviceRecord, now: datetime, mono: float) -> None:
        device_id = record.context.name
        if visible_changes(record.written, record.current):
            self.writes.changed(
                device_id,
                urgent=urgent_change(record.written, record.current),
                now=mono,
            )
        elif record.current.last_seen is not None and refresh_due(
            record.written.last_seen, now, record.period, self.refresh_periods
        ):
            self.writes.refresh(device_id)

    # ---- writing -----------------------------------------------------------------------------

    def plan(self, device_id: str) -> PlannedWrite | None:
        """What to write for a device now (its latest state), or None if nothing is left."""
        record = self._devices.get(device_id)
        if record is None:
            return None
        status = record.current
        return PlannedWrite(device_id, record.context.namespace, status, status_patch(status))

    def written(self, write: PlannedWrite) -> None:
        """The write succeeded: the API now holds ``write.status``."""
        record = self._devices.get(write.device_id)
        if record is not None and record.context.namespace == write.namespace:
            record.written = write.status

    def failed(self, write: PlannedWrite, mono: float) -> None:
        """The write failed: try again later (the coalescer's bucket paces retries)."""
        record = self._devices.get(write.device_id)
        if record is not None:
            self.writes.changed(
                write.device_id, urgent=urgent_change(record.written, record.current), now=mono
            )

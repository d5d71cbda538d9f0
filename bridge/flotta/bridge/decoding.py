"""Payload decoding on the hot path.

A payload in the form the devices write (compact JSON, ``schemaVersion`` first and only
once) is first decoded by the msgspec mirror of the contract (:mod:`flotta.agent.contract`),
which ``tests/schemas/test_device_contract.py`` holds to never accept what the reference
refuses; then, if the mirror refused it, validated as JSON by pydantic-core in strict mode.
Everything else, and everything both refuse, goes to the contract's
:func:`~flotta.schemas.codec.decode`, which has the last word and raises the typed
:class:`~flotta.schemas.errors.PayloadError` subclasses. So the bridge rejects exactly what
the contract rejects.

What the bridge keeps: the reference model for status, connection and event messages (built
from the mirror's fields without a second validation), and a :class:`Batch` (stream and
sequence) for metrics and logs batches, which go to NATS as the device sent them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
from pydantic import ValidationError

from flotta.agent import contract
from flotta.schemas.codec import DEVICE_PAYLOADS, decode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.common import SCHEMA_VERSION, Payload
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport, TelemetryBuffer, UpgradeReport, WorkloadReport
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

VERSION_KEY = b'"schemaVersion"'
FAST_PREFIX = VERSION_KEY.join((b"{", b":%d," % SCHEMA_VERSION))


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated metrics or logs batch: what the bridge needs of it."""

    kind: Literal["metrics", "logs"]
    stream: str
    sequence: int

    def message_id(self, device_id: str) -> str:
        return f"{device_id}:{self.kind}:{self.stream}:{self.sequence}"


Report = Payload | Batch


def decode_report(kind: DeviceTopic, data: bytes) -> Report:
    model = DEVICE_PAYLOADS[kind]
    if (
        len(data) <= model.MAX_BYTES
        and data.startswith(FAST_PREFIX)
        and data.count(VERSION_KEY) == 1
    ):
        fast = _MIRRORED.get(kind)
        if fast is not None:
            try:
                return fast(data)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                pass
        try:
            return _kept(model.model_validate_json(data, strict=True))
        except (ValidationError, ValueError, RecursionError):
            pass
    return _kept(decode(model, data))


def _kept(payload: Payload) -> Report:
    if isinstance(payload, MetricsBatch):
        return Batch("metrics", payload.stream, payload.sequence)
    if isinstance(payload, LogsBatch):
        return Batch("logs", payload.stream, payload.sequence)
    return payload


# ---- the mirror's structs -> what the bridge keeps --------------------------------------------

_status = msgspec.json.Decoder(contract.StatusReport)
_connection = msgspec.json.Decoder(contract.ConnectionState)
_event = msgspec.json.Decoder(contract.DeviceEvent)
_metrics = msgspec.json.Decoder(contract.MetricsBatch)
_logs = msgspec.json.Decoder(contract.LogsBatch)


class _NotMirrored(msgspec.ValidationError):
    """A field the fast path does not rebuild (hardware): the reference decodes it."""


def _status_report(data: bytes) -> Report:
    report = _status.decode(data)
    if report.hardware is not None:
        raise _NotMirrored
    upgrade = report.upgrade
    telemetry = report.telemetry
    return StatusReport.model_construct(
        time=report.time,
        applied_version=report.applied_version,
        heartbeat_period_seconds=report.heartbeat_period_seconds,
        workloads=[
            WorkloadReport.model_construct(
                name=w.name,
                phase=w.phase,
                message=w.message,
                since=w.since,
                last_data_upload=w.last_data_upload,
            )
            for w in report.workloads
        ],
        hardware=None,
        upgrade=None
        if upgrade is None
        else UpgradeReport.model_construct(
            supported=upgrade.supported,
            current_commit_id=upgrade.current_commit_id,
            requested_commit_id=upgrade.requested_commit_id,
            last_upgrade_status=upgrade.last_upgrade_status,
            last_upgrade_time=upgrade.last_upgrade_time,
            message=upgrade.message,
        ),
        telemetry=None
        if telemetry is None
        else TelemetryBuffer.model_construct(
            buffered_records=telemetry.buffered_records,
            dropped_records=telemetry.dropped_records,
        ),
        certificate_not_after=report.certificate_not_after,
    )


def _connection_state(data: bytes) -> Report:
    state = _connection.decode(data)
    return ConnectionState.model_construct(
        state=state.state,
        time=state.time,
        applied_version=state.applied_version,
        agent_version=state.agent_version,
        reason=state.reason,
    )


def _device_event(data: bytes) -> Report:
    event = _event.decode(data)
    return DeviceEvent.model_construct(
        id=event.id,
        time=event.time,
        type=event.type,
        reason=event.reason,
        message=event.message,
        workload=event.workload,
    )


def _metrics_batch(data: bytes) -> Report:
    batch = _metrics.decode(data)
    return Batch("metrics", batch.stream, batch.sequence)


def _logs_batch(data: bytes) -> Report:
    batch = _logs.decode(data)
    return Batch("logs", batch.stream, batch.sequence)


_MIRRORED: dict[DeviceTopic, Callable[[bytes], Report]] = {
    DeviceTopic.STATUS: _status_report,
    DeviceTopic.CONNECTION: _connection_state,
    DeviceTopic.EVENTS: _device_event,
    DeviceTopic.METRICS: _metrics_batch,
    DeviceTopic.LOGS: _logs_batch,
}

"""Payload decoding on the hot path, and the bytes the bridge forwards.

Status, connection and event messages go through the contract's strict decoder
(:func:`~flotta.schemas.codec.decode`, pydantic-core straight from JSON). A metrics or logs
batch first goes through the msgspec mirror of the contract (:mod:`flotta.agent.contract`),
which ``tests/schemas/test_device_contract.py`` holds to never accept what the reference
refuses; whatever the mirror refuses, or cannot judge (a log time near the ends of the
contract's range), goes to the reference, which has the last word and raises the typed
:class:`~flotta.schemas.errors.PayloadError` subclasses. So the bridge rejects exactly what
the contract rejects.

Nothing is forwarded as the device wrote it: :func:`forwarded` re-encodes the validated value,
so duplicate keys, odd escapes or number spellings never reach a consumer downstream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from flotta.agent import contract
from flotta.schemas.codec import DEVICE_PAYLOADS, decode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.common import Payload
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

# Years whose times are inside the contract's range (1970-9999 in UTC) whatever their offset.
_SAFE_YEARS = range(1971, 9998)


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated metrics or logs batch: what the bridge needs of it, and its re-encoding."""

    kind: Literal["metrics", "logs"]
    stream: str
    sequence: int
    data: bytes = field(compare=False, repr=False)

    def message_id(self, device_id: str) -> str:
        return f"{device_id}:{self.kind}:{self.stream}:{self.sequence}"


Report = Payload | Batch


def decode_report(kind: DeviceTopic, data: bytes) -> Report:
    fast = _MIRRORED.get(kind)
    if fast is not None and len(data) <= DEVICE_PAYLOADS[kind].MAX_BYTES:
        try:
            batch = fast(data)
        except (
            msgspec.ValidationError,
            msgspec.DecodeError,
            UnicodeDecodeError,
            RecursionError,
        ):
            pass  # the reference decoder below gives the verdict and the message
        else:
            if batch is not None:
                return batch
    return _kept(decode(DEVICE_PAYLOADS[kind], data))


def forwarded(report: Report) -> bytes:
    """The JSON that goes to NATS: the validated value encoded again, never the raw bytes."""
    if isinstance(report, Batch):
        return report.data
    return report.model_dump_json(by_alias=True, exclude_none=True).encode()


def _kept(payload: Payload) -> Report:
    if isinstance(payload, MetricsBatch | LogsBatch):
        data = payload.model_dump_json(by_alias=True, exclude_none=True).encode()
        kind: Literal["metrics", "logs"] = (
            "metrics" if isinstance(payload, MetricsBatch) else "logs"
        )
        return Batch(kind, payload.stream, payload.sequence, data)
    return payload


# ---- metrics and logs batches through the mirror --------------------------------------------

_metrics = msgspec.json.Decoder(contract.MetricsBatch)
_logs = msgspec.json.Decoder(contract.LogsBatch)
_encode = msgspec.json.Encoder().encode


def _metrics_batch(data: bytes) -> Batch | None:
    batch = _metrics.decode(data)
    return Batch("metrics", batch.stream, batch.sequence, _encode(batch))


def _logs_batch(data: bytes) -> Batch | None:
    batch = _logs.decode(data)
    if not all(line.time.year in _SAFE_YEARS for line in batch.lines):
        return None
    return Batch("logs", batch.stream, batch.sequence, _encode(batch))


_MIRRORED: dict[DeviceTopic, Callable[[bytes], Batch | None]] = {
    DeviceTopic.METRICS: _metrics_batch,
    DeviceTopic.LOGS: _logs_batch,
}

"""Building metrics and logs batches from buffered record bodies: pure."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from flotta.schemas.codec import encode
from flotta.schemas.wire.telemetry import LogLine, LogsBatch, MetricSample, MetricsBatch

MAX_RECORDS_PER_BATCH = 10000


class Kind(enum.StrEnum):
    METRICS = "metrics"
    LOGS = "logs"


BATCH_MAX_BYTES = {Kind.METRICS: MetricsBatch.MAX_BYTES, Kind.LOGS: LogsBatch.MAX_BYTES}
# Room for the envelope ({"schemaVersion":1,"stream":...,"sequence":...,"dropped":...}).
ENVELOPE_BYTES = 512


def build_batch(
    kind: Kind, *, stream: str, sequence: int, bodies: Sequence[bytes], dropped: int
) -> bytes:
    """The encoded batch; raises PayloadTooLargeError when the bodies do not fit."""
    if kind is Kind.METRICS:
        return encode(
            MetricsBatch(
                stream=stream,
                sequence=sequence,
                samples=[MetricSample.model_validate_json(body) for body in bodies],
                dropped=dropped,
            )
        )
    return encode(
        LogsBatch(
            stream=stream,
            sequence=sequence,
            lines=[LogLine.model_validate_json(body) for body in bodies],
            dropped=dropped,
        )
    )


def record_body(record: MetricSample | LogLine) -> bytes:
    return record.model_dump_json(by_alias=True, exclude_none=True).encode()

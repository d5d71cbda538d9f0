"""Building metrics and logs batches from buffered record bodies: pure."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from flotta.schemas.codec import decode_fragment, encode, encode_fragment
from flotta.schemas.wire import LogLine, LogsBatch, MetricSample, MetricsBatch

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
                samples=[decode_fragment(MetricSample, body) for body in bodies],
                dropped=dropped,
            )
        )
    return encode(
        LogsBatch(
            stream=stream,
            sequence=sequence,
            lines=[decode_fragment(LogLine, body) for body in bodies],
            dropped=dropped,
        )
    )


def record_body(record: MetricSample | LogLine) -> bytes:
    return encode_fragment(record)

"""Device logs batches as the exporter reads them from JetStream, for the log sinks' tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from flotta.exporter.sink import DeviceBatch
from flotta.schemas.wire.telemetry import LogLine, LogsBatch, LogStream

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def line(
    text: str,
    *,
    at: datetime = T0,
    workload: str = "app",
    container: str = "main",
    stream: LogStream = "stdout",
) -> LogLine:
    return LogLine(workload=workload, container=container, time=at, stream=stream, line=text)


def batch(
    lines: Sequence[LogLine],
    *,
    device: str = "dev-1",
    namespace: str = "site-a",
    buffer: str = "b0",
    sequence: int = 0,
    stream_sequence: int = 1,
) -> DeviceBatch[LogsBatch]:
    return DeviceBatch(
        namespace=namespace,
        device=device,
        stream_sequence=stream_sequence,
        batch=LogsBatch(stream=buffer, sequence=sequence, lines=list(lines)),
    )


def ticks(
    count: int, *, start: datetime = T0, step: timedelta = timedelta(seconds=1), **kw: object
) -> list[LogLine]:
    """``tick-0`` .. ``tick-{count-1}``, one ``step`` apart."""
    return [line(f"tick-{i}", at=start + i * step, **kw) for i in range(count)]  # type: ignore[arg-type]

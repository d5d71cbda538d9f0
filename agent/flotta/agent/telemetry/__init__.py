"""Device telemetry: system and workload metrics and workload logs, buffered on disk
(SQLite, WAL) while offline and sent as numbered batches once the broker acknowledges."""

from flotta.agent.telemetry.buffer import BufferStats, StoredBatch, TelemetryBuffer
from flotta.agent.telemetry.errors import (
    BufferStoreError,
    ExpositionError,
    ScrapeError,
    TelemetryError,
)
from flotta.agent.telemetry.logs import LogEntry, LogSource
from flotta.agent.telemetry.service import TelemetryService, TelemetryStats

__all__ = [
    "BufferStats",
    "BufferStoreError",
    "ExpositionError",
    "LogEntry",
    "LogSource",
    "ScrapeError",
    "StoredBatch",
    "TelemetryBuffer",
    "TelemetryError",
    "TelemetryService",
    "TelemetryStats",
]

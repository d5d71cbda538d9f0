"""Errors of the telemetry pipeline.

TelemetryError                anything the telemetry pipeline reports
├── ExpositionError           Prometheus text that breaks the exposition format (line number)
├── ScrapeError               a workload endpoint that could not be scraped
└── BufferStoreError          the on-disk buffer cannot be opened or written
"""

from __future__ import annotations


class TelemetryError(Exception):
    """A failure in collecting, buffering or sending telemetry."""


class ExpositionError(TelemetryError):
    def __init__(self, line_number: int, reason: str) -> None:
        super().__init__(f"Prometheus text, line {line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason


class ScrapeError(TelemetryError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"scraping {url} failed: {reason}")
        self.url = url
        self.reason = reason


class BufferStoreError(TelemetryError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"telemetry buffer {path}: {reason}")
        self.path = path
        self.reason = reason

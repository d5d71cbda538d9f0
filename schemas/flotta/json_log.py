"""Structured logs for the operator and the bridge: one JSON object per line, written by
python-json-logger's formatter.

Every line has ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger`` and
``message``, then any ``extra`` fields of the call, then ``exception`` (the traceback) when
there is one. Values JSON cannot hold are written as text.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _LibraryFormatter

_RENAMED = {"levelname": "level", "name": "logger", "exc_info": "exception"}


class JsonFormatter(_LibraryFormatter):
    """One JSON object per line: time, level, logger, message, ``extra`` fields, exception."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields=_RENAMED,
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        super().add_fields(log_data, record, message_dict)


def use_json_logs(level: str | None = None) -> None:
    """Every handler of the root logger writes JSON lines (one on stderr if there is none);
    ``level``: the root logger's level too."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    if level is not None:
        root.setLevel(level.upper())

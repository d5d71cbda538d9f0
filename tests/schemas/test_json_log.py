"""The shared JSON log format (flotta.json_log) of the operator and the bridge."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from flotta.json_log import JsonFormatter, use_json_logs


def test_a_line_has_the_fields_extras_and_the_traceback() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "flotta.bridge", logging.ERROR, "x.py", 1, "lost %s", ("dév-1",), exc_info
    )
    record.device = "dév-1"
    record.sizes = [1, 2]
    record.thing = object()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "dév-1" in line  # not escaped
    document = json.loads(line)
    assert list(document)[:4] == ["time", "level", "logger", "message"]
    assert document["time"].endswith("Z")
    assert (document["level"], document["logger"], document["message"]) == (
        "ERROR",
        "flotta.bridge",
        "lost dév-1",
    )
    assert (document["device"], document["sizes"]) == ("dév-1", [1, 2])
    assert document["thing"].startswith("<object object")
    assert "ValueError: bad" in document["exception"]


def test_use_json_logs_formats_every_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", root.level)
    use_json_logs("warning")
    assert root.level == logging.WARNING
    logging.getLogger("flotta.test").warning("hello", extra={"device": "d1"})
    document = json.loads(stream.getvalue())
    assert (document["message"], document["device"]) == ("hello", "d1")

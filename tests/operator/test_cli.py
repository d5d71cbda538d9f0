"""``flotta operator`` from the command line, and the JSON log format."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from flotta.json_log import JsonFormatter
from tests.fixtures.sources import ROOT, source_path


def flotta(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flotta.cli", *args],
        env={**os.environ, "PYTHONPATH": source_path()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_help_names_the_approval_policy() -> None:
    result = flotta("operator", "run", "--help")
    assert result.returncode == 0
    assert "--auto-approve" in result.stdout


def test_bad_auto_approve_entry_is_refused_with_a_message(tmp_path: object) -> None:
    result = flotta(
        "operator", "run", "--pki-dir", str(tmp_path), "--auto-approve", "Not_A_Namespace"
    )
    assert result.returncode == 2
    assert "expected '*', NAMESPACE or NAMESPACE/SET" in result.stdout + result.stderr


def test_json_log_lines_carry_extra_fields() -> None:
    record = logging.LogRecord(
        "flotta.operator", logging.INFO, "x.py", 1, "published %s", ("d1",), None
    )
    record.device = "d1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "published d1"
    assert line["device"] == "d1"
    assert line["level"] == "INFO"

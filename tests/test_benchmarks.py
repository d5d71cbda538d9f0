"""``make bench`` runs every benchmark, and each one starts as benchmarks/README.md says
(``.venv/bin/python benchmarks/NAME.py``, no PYTHONPATH)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run as suite

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def test_the_suite_holds_every_benchmark() -> None:
    scripts = {path.name for path in BENCHMARKS.glob("*_bench.py")}
    assert {bench.script for bench in suite.SUITE} == scripts
    assert "benchmarks/run.py" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize("bench", suite.SUITE, ids=lambda b: b.name)
def test_each_benchmark_starts_without_pythonpath(bench: suite.Benchmark, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / bench.script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_the_runner_lists_and_refuses_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert suite.main(["--list", "--only", "fleet"]) == 0
    assert "fleet_bench.py --devices 10000" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        suite.main(["--only", "nonsense"])

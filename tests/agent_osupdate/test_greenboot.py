"""The greenboot health check script, run with a stand-in ``systemctl`` on PATH (systemd is
not running here) and the real Podman with a private storage configuration."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "agent/packaging/greenboot/40_flotta_agent_check.sh"

SYSTEMCTL = """#!/bin/sh
# stand-in: "systemctl is-active UNIT" answers what the state file says
[ "$1" = is-active ] || exit 2
state="$(cat "$FAKE_UNIT_STATE")"
echo "$state"
[ "$state" = active ]
"""


@pytest.fixture
def health_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/root"\nrunroot = "{tmp_path}/run"\n'
    )
    (tmp_path / "unit-state").write_text("active\n")
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        FAKE_UNIT_STATE=str(tmp_path / "unit-state"),
        CONTAINERS_STORAGE_CONF=str(tmp_path / "storage.conf"),
        FLOTTA_HEALTH_TIMEOUT="8",
        FLOTTA_HEALTH_INTERVAL="1",
    )
    return env


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHECK], env=env, capture_output=True, text=True, timeout=60)


def test_healthy_when_the_agent_is_active_and_podman_answers(health_env: dict[str, str]) -> None:
    result = run_check(health_env)
    assert result.returncode == 0, result.stderr
    assert "flotta-agent.service active, podman answers" in result.stdout


def test_a_failed_agent_fails_at_once(health_env: dict[str, str]) -> None:
    Path(health_env["FAKE_UNIT_STATE"]).write_text("failed\n")
    started = time.monotonic()
    result = run_check(health_env)
    assert result.returncode == 1
    assert "has failed" in result.stderr
    assert time.monotonic() - started < 6  # well before the 8 s it would wait for a starting agent


def test_waits_for_a_starting_agent_then_gives_up(health_env: dict[str, str]) -> None:
    Path(health_env["FAKE_UNIT_STATE"]).write_text("activating\n")
    result = run_check(health_env)
    assert result.returncode == 1
    assert "failed after 8s: flotta-agent.service is activating" in result.stderr


def test_broken_podman_fails(health_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "broken.conf").write_text("this is [[ not toml\n")
    health_env["CONTAINERS_CONF"] = str(tmp_path / "broken.conf")
    result = run_check(health_env)
    assert result.returncode == 1
    assert "podman does not answer" in result.stderr

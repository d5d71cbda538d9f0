"""The systemd unit leaves writable exactly what the agent writes, and systemd accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flotta.agent.config import AgentConfig
from flotta.agent.osupdate.updater import REMOTES_DIR

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "agent" / "packaging" / "flotta-agent.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_writable_paths_are_the_agents() -> None:
    unit = settings()
    defaults = AgentConfig()
    assert unit["ProtectSystem"] == ["full"]  # /usr, /boot, /efi and /etc read-only
    # /etc/ostree/remotes.d: the OS updater's remote; "-": absent without ostree
    assert unit["ReadWritePaths"] == [f"-{REMOTES_DIR}"]
    assert defaults.state_dir == Path("/var/lib") / unit["StateDirectory"][0]
    assert defaults.files_root.is_relative_to(Path("/run") / unit["RuntimeDirectory"][0])
    assert Path("/etc", unit["ConfigurationDirectory"][0]) == defaults.bootstrap_cert.parent
    # the agent reads its configuration and credentials there, never writes
    for path in (defaults.ca_cert, defaults.bootstrap_cert, defaults.bootstrap_key):
        assert path.is_relative_to("/etc/flotta-agent")
    assert unit["StateDirectoryMode"] == unit["RuntimeDirectoryMode"] == ["0700"]
    assert unit["UMask"] == ["0077"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    # systemd-analyze checks that ExecStart's program exists: point it at this interpreter
    text = UNIT.read_text()
    assert "ExecStart=/usr/bin/python3.11 " in text
    python = shutil.which("python3") or "/usr/bin/python3"
    unit.write_text(text.replace("/usr/bin/python3.11", python))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr, done.stderr

"""Fixtures: the agent's packages built once per session (``deploy/packages/build.py``), and
a second build with a bumped revision for the upgrade."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "packages" / "build.py"


@dataclass(frozen=True)
class Built:
    deb: Path
    rpm: Path | None
    seconds: float


def build(out: Path, *, revision: str, formats: str, arch: str | None = None) -> Built:
    tools = {"deb": "dpkg-deb", "rpm": "rpmbuild"}
    for kind in formats.split(","):
        if shutil.which(tools[kind]) is None:
            pytest.fail(f"{tools[kind]} is missing (make system-packages installs it)")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(BUILD),
            "--revision",
            revision,
            "--formats",
            formats,
            "--out",
            str(out),
            "--work",
            str(out / "work"),
            *(["--arch", arch] if arch else []),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    rpms = sorted(out.glob("*.rpm"))
    return Built(next(out.glob("*.deb")), rpms[0] if rpms else None, seconds)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Revision 1: the .deb and the .rpm, as ``make agent-packages`` builds them."""
    return build(tmp_path_factory.mktemp("packages"), revision="1", formats="deb,rpm")


@pytest.fixture(scope="session")
def upgrade_deb(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Revision 2 of the .deb: the upgrade."""
    return build(tmp_path_factory.mktemp("packages-r2"), revision="2", formats="deb")

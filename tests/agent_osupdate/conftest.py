"""The rpm-ostree stand-in on PATH, its state file and a boot id file."""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STANDIN = Path(__file__).parent / "standin"
BOOTED = "a" * 64
NEW = "b" * 64
LATEST = "c" * 64
MISSING = "d" * 64


@dataclass
class OstreeHost:
    state_file: Path
    boot_id_file: Path
    state_dir: Path

    @property
    def reboot_command(self) -> list[str]:
        return [
            sys.executable,
            str(STANDIN / "simulate-reboot"),
            str(self.state_file),
            str(self.boot_id_file),
        ]

    def read(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    def update(self, **changes: Any) -> None:
        state = self.read()
        state.update(changes)
        self.state_file.write_text(json.dumps(state))

    def calls(self, command: str) -> list[list[str]]:
        return [call for call in self.read().get("calls", []) if call[0] == command]


@pytest.fixture
def ostree_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OstreeHost:
    host = OstreeHost(tmp_path / "ostree.json", tmp_path / "boot_id", tmp_path / "agent")
    host.state_file.write_text(
        json.dumps(
            {
                "deployments": [
                    {"checksum": BOOTED, "booted": True, "origin": "fedora:fedora/iot"}
                ],
                "available": [BOOTED, NEW, LATEST],
                "latest": BOOTED,
                "bad": [],
            }
        )
    )
    host.boot_id_file.write_text(f"{uuid.uuid4()}\n")
    monkeypatch.setenv("PATH", f"{STANDIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RPM_OSTREE_STANDIN_STATE", str(host.state_file))
    return host

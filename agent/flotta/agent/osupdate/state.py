"""What the updater remembers across restarts and reboots, written atomically."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Phase = Literal["", "deploying", "rebooting"]


@dataclass(frozen=True, slots=True)
class UpdateState:
    requested_commit: str = ""
    phase: Phase = ""
    boot_id: str = ""  # the boot in which the reboot was requested
    last_status: str = ""  # "", "Succeeded", "Failed"
    last_time: str = ""  # ISO 8601
    last_message: str = ""
    failed_commit: str = ""  # booted and rolled back: not tried again unless requested anew
    retry_not_before: str = ""  # after a failed deployment (ISO 8601)

    def with_changes(self, **changes: str) -> UpdateState:
        return replace(self, **changes)  # type: ignore[arg-type]


def load_state(path: Path) -> UpdateState:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return UpdateState()
    except (OSError, ValueError) as exc:
        log.error("OS update state %s is unreadable (%s); starting afresh", path, exc)
        return UpdateState()
    if not isinstance(document, dict):
        return UpdateState()
    known = {f.name for f in fields(UpdateState)}
    values = {k: v for k, v in document.items() if k in known and isinstance(v, str)}
    if values.get("phase") not in ("", "deploying", "rebooting", None):
        values.pop("phase")
    return UpdateState(**values)  # type: ignore[arg-type]


def save_state(path: Path, state: UpdateState) -> None:
    """Write, fsync, rename, fsync the folder: a power cut leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as handle:
        json.dump(asdict(state), handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)

"""The small status file the daemon keeps for ``flotta agent status``: written atomically, read
without talking to the daemon."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flotta.pki.files import PUBLIC_MODE, write_atomic

STATUS_FILE = "status.json"


@dataclass(frozen=True, slots=True)
class WorkloadLine:
    name: str
    phase: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class LocalStatus:
    device_id: str
    pid: int
    updated: str  # ISO 8601 UTC
    broker: str
    phase: str  # starting, enrolling, running, deregistered
    connected: bool = False
    last_connected: str = ""
    last_error: str = ""
    desired_version: str = ""
    applied_version: str = ""  # running and past its health gate (the last known good)
    applying_version: str = ""
    waiting_version: str = ""  # waits for the update window
    failed_version: str = ""
    failed_reason: str = ""
    rolled_back: bool = False
    workloads: list[WorkloadLine] = field(default_factory=list)
    telemetry_buffered: int = 0
    telemetry_dropped: int = 0
    telemetry_unconfirmed: int = 0  # batches sent, waiting for the bridge's receipt
    telemetry_resent: int = 0  # batches sent again for want of a receipt, since start
    events_pending: int = 0  # not sent yet, or sent and waiting for the bridge's receipt
    events_dropped: int = 0
    events_unconfirmed: int = 0  # sent, waiting for the bridge's receipt
    events_resent: int = 0  # sent again for want of a receipt, since start
    events_not_saved: int = 0  # journal writes that failed, since start (kept in memory)
    bad_desired_payloads: int = 0
    bad_receipts: int = 0


def write_status(state_dir: Path, status: LocalStatus) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(
        state_dir / STATUS_FILE,
        json.dumps(asdict(status), indent=1).encode(),
        mode=PUBLIC_MODE,
    )


def read_status(state_dir: Path) -> LocalStatus | None:
    try:
        document: Any = json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    try:
        workloads = [WorkloadLine(**line) for line in document.pop("workloads", [])]
        return LocalStatus(workloads=workloads, **document)
    except TypeError:
        return None

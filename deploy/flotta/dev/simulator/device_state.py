"""A simulated device's applied state on disk, so a restarted simulator resumes where it was
(as the real agent keeps its applied desired state)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import get_args

import msgspec

from flotta.dev.simulator.device import SimulatedDevice
from flotta.pki.files import write_atomic
from flotta.schemas.wire.status import VersionFailure, WorkloadPhase

logger = logging.getLogger(__name__)

STATE_NAME = "state.json"
PHASES: frozenset[str] = frozenset(get_args(WorkloadPhase))


def save(device: SimulatedDevice, directory: Path) -> None:
    state: dict[str, object] = {
        "applied_version": device.applied_version,
        "phases": device.phases,
    }
    if device.failed is not None:
        state["failed"] = msgspec.json.encode(device.failed).decode()
    write_atomic(directory / STATE_NAME, json.dumps(state, sort_keys=True).encode())


def load(device: SimulatedDevice, directory: Path) -> bool:
    """Restore what was saved; a missing or malformed file leaves the device fresh (False)."""
    path = directory / STATE_NAME
    try:
        state = json.loads(path.read_bytes())
        version = state["applied_version"]
        phases = state["phases"]
        if not isinstance(version, str) or not isinstance(phases, dict):
            raise TypeError("wrong types")
        if not all(isinstance(k, str) and v in PHASES for k, v in phases.items()):
            raise ValueError("unknown workload phase")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("%s: ignoring saved state (%s)", path, exc)
        return False
    device.applied_version = version
    device.phases = dict(phases)
    if isinstance(state.get("failed"), str):
        try:
            device.failed = msgspec.json.decode(state["failed"], type=VersionFailure)
        except msgspec.DecodeError as exc:
            logger.warning("%s: ignoring the saved failed version (%s)", path, exc)
    return True

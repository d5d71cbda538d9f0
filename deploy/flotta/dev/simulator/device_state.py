"""A simulated device's applied state on disk, so a restarted simulator resumes where it was
(as the real agent keeps its applied desired state)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import get_args

from flotta.dev.simulator.device import SimulatedDevice
from flotta.pki.files import write_atomic
from flotta.schemas.wire.status import WorkloadPhase

logger = logging.getLogger(__name__)

STATE_NAME = "state.json"
PHASES: frozenset[str] = frozenset(get_args(WorkloadPhase))


def save(device: SimulatedDevice, directory: Path) -> None:
    state = {"applied_version": device.applied_version, "phases": device.phases}
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
    return True

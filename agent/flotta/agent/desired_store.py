"""The last good desired state on disk, so a device that boots offline runs its workloads.

Each accepted payload is written atomically (temporary file, fsync, rename, directory fsync)
before the agent acts on it; a payload that does not decode never replaces it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flotta.agent.errors import StateStoreError
from flotta.pki.files import KEY_MODE, write_atomic
from flotta.schemas.codec import decode
from flotta.schemas.errors import ContractError
from flotta.schemas.wire import DesiredState

log = logging.getLogger(__name__)

DESIRED_FILE = "desired.json"


class DesiredStore:
    def __init__(self, state_dir: Path, name: str = DESIRED_FILE) -> None:
        self.path = state_dir / name

    def load(self) -> DesiredState | None:
        """The persisted state, or None when there is none or it cannot be read."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read the persisted desired state %s: %s", self.path, exc)
            return None
        try:
            return decode(DesiredState, raw)
        except ContractError as exc:
            log.error("the persisted desired state %s is unusable: %s", self.path, exc)
            return None

    def save(self, raw: bytes) -> None:
        """Persist the payload exactly as received (it decoded already)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # 0600: the payload holds sealed secrets and the device's configuration.
            write_atomic(self.path, raw, mode=KEY_MODE)
        except OSError as exc:
            raise StateStoreError(
                f"cannot persist the desired state to {self.path}: {exc}"
            ) from None

    def erase(self) -> None:
        self.path.unlink(missing_ok=True)

"""The apply of a version as a transaction, journaled on disk, and what to do next. The
decision (:func:`next_step`) is pure.

``rollout.json`` holds the transaction under way (the version, ``applying`` or
``rolling-back``, and in the latter the failure) and the latest failed version; the last known
good desired state is ``good.json`` beside ``desired.json`` (the latest received). Each is
written atomically, in an order that leaves every crash point resumable:

- apply: journal ``applying V`` -> pods -> health gate -> ``good.json`` := V -> journal empty;
- rollback: journal ``rolling-back V`` (with the failure) -> the good pods again -> journal
  empty with ``failed`` := V.

A restart finds either no transaction (the good state runs, or is made to run) or one to
resume: ``applying`` is applied and verified again from the start (at most
:data:`MAX_ATTEMPTS` times, then it counts as failed), ``rolling-back`` is finished.

A failed version is applied again only when the desired state carries a retry token greater
than the one it failed under (``failed.retry``): once per new token, since the next failure
records that token. A retry under way is finished even if the token goes away meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import msgspec

from flotta.pki.files import KEY_MODE, write_atomic
from flotta.schemas.wire import VersionFailure

log = logging.getLogger(__name__)

JOURNAL_FILE = "rollout.json"
GOOD_FILE = "good.json"
MAX_ATTEMPTS = 3

Step = Literal["keep", "wait", "apply", "rollback"]


class Transaction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    version: str
    phase: Literal["applying", "rolling-back"] = "applying"
    attempts: int = 1  # starts of this apply, counting resumptions after a restart
    failure: VersionFailure | None = None  # rolling back: why
    retry: int = 0  # the desired state's retry token when this apply started


class RolloutRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    transaction: Transaction | None = None
    failed: VersionFailure | None = None


def next_step(
    desired_version: str,
    good_version: str,
    record: RolloutRecord,
    *,
    window_open: bool,
    retry: int = 0,
) -> Step:
    """``keep``: run the good state (level-triggered; a transaction of another version is
    dropped); ``wait``: the same, the new version waiting for its window; ``apply``: start or
    resume the transaction of the desired version; ``rollback``: finish a rollback. ``retry``
    is the desired state's retry token."""
    transaction = record.transaction
    if transaction is not None and transaction.phase == "rolling-back":
        return "rollback"
    if desired_version == good_version:
        return "keep"
    if transaction is not None and transaction.version == desired_version:
        return "apply"  # started in a window (or on a retry): finished whatever changed since
    failed = record.failed
    if failed is not None and desired_version == failed.version and retry <= failed.retry:
        return "keep"
    return "apply" if window_open else "wait"


class RolloutJournal:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> RolloutRecord:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=RolloutRecord)
        except FileNotFoundError:
            return RolloutRecord()
        except (OSError, msgspec.DecodeError) as exc:
            log.error(
                "the rollout journal %s is unusable (%s): starting without it", self.path, exc
            )
            return RolloutRecord()

    def save(self, record: RolloutRecord) -> None:
        """Raises OSError: a transaction is not started unless its journal is on disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, msgspec.json.encode(record), mode=KEY_MODE)

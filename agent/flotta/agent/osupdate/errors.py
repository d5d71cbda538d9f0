"""Errors of OS updates.

OsUpdateError                 anything that stops an OS update
├── OstreeCommandError        rpm-ostree (or the reboot hook) failed or could not run
└── OstreeStatusError         ``rpm-ostree status --json`` printed something unexpected
"""

from __future__ import annotations

from collections.abc import Sequence


class OsUpdateError(Exception):
    """An OS update step that failed."""


class OstreeCommandError(OsUpdateError):
    def __init__(self, command: Sequence[str], reason: str) -> None:
        super().__init__(f"{' '.join(command)}: {reason}")
        self.command = tuple(command)
        self.reason = reason


class OstreeStatusError(OsUpdateError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"rpm-ostree status: {reason}")
        self.reason = reason

"""Errors of the bridge.

BridgeError                  anything the bridge refuses or cannot do
├── RejectedMessageError          a device message that is not accepted (counted, reported on NATS)
└── KubeWriteError           a Kubernetes write failed
"""

from __future__ import annotations


class BridgeError(Exception):
    """Something the bridge refuses or cannot do."""


class RejectedMessageError(BridgeError):
    """A device message that is not accepted; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class KubeWriteError(BridgeError):
    """A write to the Kubernetes API failed."""

    def __init__(self, what: str, status: int | None, detail: str) -> None:
        super().__init__(f"{what} failed (HTTP {status}): {detail}")
        self.what = what
        self.status = status
        self.detail = detail

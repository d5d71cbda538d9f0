"""Errors of the workload runtime.

WorkloadRuntimeError               anything the runtime could not do
├── InvalidManifestError           a workload that can never run as given (fix the manifest)
├── PodmanUnreachableError         the Podman API socket does not answer (retry later)
└── PodmanApiError                 Podman answered with an error
    ├── ImageUnavailableError      an image is neither local nor pullable (retry later)
    └── WorkloadNotFoundError      no such pod
"""

from __future__ import annotations

from pathlib import Path


class WorkloadRuntimeError(RuntimeError):
    """Something the workload runtime could not do."""


class InvalidManifestError(WorkloadRuntimeError):
    """A workload that can never run as given."""

    def __init__(self, workload: str, reason: str) -> None:
        super().__init__(f"workload {workload!r}: {reason}")
        self.workload = workload
        self.reason = reason


class PodmanUnreachableError(WorkloadRuntimeError):
    """The Podman API socket cannot be reached."""

    def __init__(self, socket_path: Path, cause: BaseException) -> None:
        super().__init__(f"Podman API at {socket_path} is unreachable: {cause}")
        self.socket_path = socket_path


class PodmanApiError(WorkloadRuntimeError):
    """Podman answered a request with an error status."""

    def __init__(self, operation: str, status: int, message: str) -> None:
        super().__init__(f"{operation} failed (HTTP {status}): {message}")
        self.operation = operation
        self.status = status
        self.message = message


class ImageUnavailableError(PodmanApiError):
    """An image the workload needs is not present and could not be pulled."""


class WorkloadNotFoundError(PodmanApiError):
    """No pod of that name."""

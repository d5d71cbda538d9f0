"""The device's workload runtime: desired workloads -> Podman pods.

``plan`` decides (pure); ``PodmanRuntime`` acts through the libpod API socket.
"""

from flotta.agent.runtime.errors import (
    ImageUnavailableError,
    InvalidManifestError,
    PodmanApiError,
    PodmanUnreachableError,
    WorkloadNotFoundError,
    WorkloadRuntimeError,
)
from flotta.agent.runtime.log_frames import LogLine
from flotta.agent.runtime.manifest import RenderedWorkload, render
from flotta.agent.runtime.phases import workload_state
from flotta.agent.runtime.planning import Plan, plan
from flotta.agent.runtime.podman import PodmanRuntime, ReconcileResult
from flotta.agent.runtime.spec import (
    SPEC_HASH_LABEL,
    WORKLOAD_LABEL,
    ContainerHealth,
    ContainerState,
    ExecResult,
    Phase,
    RunningWorkload,
    WorkloadSpec,
    WorkloadState,
    spec_hash,
)

__all__ = [
    "SPEC_HASH_LABEL",
    "WORKLOAD_LABEL",
    "ContainerHealth",
    "ContainerState",
    "ExecResult",
    "ImageUnavailableError",
    "InvalidManifestError",
    "LogLine",
    "Phase",
    "Plan",
    "PodmanApiError",
    "PodmanRuntime",
    "PodmanUnreachableError",
    "ReconcileResult",
    "RenderedWorkload",
    "RunningWorkload",
    "WorkloadNotFoundError",
    "WorkloadRuntimeError",
    "WorkloadSpec",
    "WorkloadState",
    "plan",
    "render",
    "spec_hash",
    "workload_state",
]

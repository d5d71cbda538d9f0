"""A workload's phase from its containers' states. Pure.

Podman 4.3 restarts a container whose pod says ``restartPolicy: Always`` (or ``OnFailure``
after a non-zero exit) immediately, with no back-off and no crash-loop state: a crashing
container shows as running again within a second, with a growing restart count. So a
container that restarted and has been up for less than ``CRASH_LOOP_WINDOW`` seconds counts
as failing.
"""

from __future__ import annotations

from collections.abc import Sequence

from flotta.agent.runtime.spec import ContainerState, Phase, WorkloadState

CRASH_LOOP_WINDOW = 10.0
PENDING_STATES = frozenset({"created", "configured", "initialized"})
STOPPED_STATES = frozenset({"stopped", "stopping", "paused"})


def workload_state(
    name: str, containers: Sequence[ContainerState], *, crash_window: float = CRASH_LOOP_WINDOW
) -> WorkloadState:
    """The phase of a workload given its application containers (infra excluded)."""
    phase, message = _phase(containers, crash_window)
    restarts = sum(container.restart_count for container in containers)
    return WorkloadState(name, phase, message, restarts, tuple(containers))


def _phase(containers: Sequence[ContainerState], crash_window: float) -> tuple[Phase, str]:
    if not containers:
        return "Unknown", "the pod has no containers"
    states = {container.state for container in containers}
    if "removing" in states:
        return "Removing", ""
    for container in containers:
        if container.state == "dead" or (container.state == "exited" and container.exit_code):
            return "Failed", _exit_message(container)
        if (
            container.state == "running"
            and container.restart_count > 0
            and container.running_for is not None
            and container.running_for < crash_window
        ):
            return "Failed", (
                f"container {container.name} is crash-looping ({container.restart_count} restarts)"
            )
    if states <= {"exited"}:
        return "Exited", "all containers completed"
    if "running" in states:
        return "Running", ""
    if states & STOPPED_STATES:
        return "Stopped", ""
    if states & PENDING_STATES:
        return "Pending", ""
    return "Unknown", "container states: " + ", ".join(sorted(states))


def _exit_message(container: ContainerState) -> str:
    if container.state == "dead":
        return f"container {container.name} is dead"
    message = f"container {container.name} exited with code {container.exit_code}"
    if container.restart_count:
        message += f" after {container.restart_count} restarts"
    return message

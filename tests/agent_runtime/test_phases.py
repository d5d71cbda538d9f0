"""Workload phases from container states. Pure."""

from __future__ import annotations

from typing import get_args

import pytest

from flotta.agent.runtime import ContainerState, Phase, workload_state
from flotta.schemas.wire.status import WorkloadPhase


def c(
    state: str, exit_code: int = 0, restarts: int = 0, up: float | None = 100.0
) -> ContainerState:
    return ContainerState("app", "id", state, exit_code, restarts, up)


@pytest.mark.parametrize(
    ("containers", "phase", "message"),
    [
        ([], "Unknown", "no containers"),
        ([c("running")], "Running", ""),
        ([c("running", restarts=2, up=300.0)], "Running", ""),
        ([c("running", restarts=4, up=1.5)], "Failed", "crash-looping (4 restarts)"),
        ([c("exited", exit_code=3, restarts=1)], "Failed", "exited with code 3 after 1 restarts"),
        ([c("exited"), c("exited")], "Exited", "completed"),
        ([c("running"), c("exited")], "Running", ""),
        ([c("created")], "Pending", ""),
        ([c("configured"), c("initialized")], "Pending", ""),
        ([c("stopped")], "Stopped", ""),
        ([c("paused")], "Stopped", ""),
        ([c("running"), c("removing")], "Removing", ""),
        ([c("dead")], "Failed", "dead"),
        ([c("mystery")], "Unknown", "mystery"),
    ],
)
def test_phase(containers: list[ContainerState], phase: str, message: str) -> None:
    state = workload_state("w", containers)
    assert state.phase == phase
    assert message in state.message
    assert state.restarts == sum(container.restart_count for container in containers)


def test_runtime_phases_are_the_wire_phases() -> None:
    assert set(get_args(Phase)) == set(get_args(WorkloadPhase))

"""What to do to get from the running pods to the desired workloads. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flotta.agent.runtime.spec import RunningWorkload, WorkloadSpec, spec_hash

# Pod states in which nothing runs (after a reboot, a manual stop, or a start that failed).
NOT_RUNNING = frozenset({"Created", "Exited", "Stopped", "Dead", "Error"})


@dataclass(frozen=True, slots=True)
class Plan:
    """Workload names per action, each sorted.

    ``start`` lists kept workloads whose pod is stopped although its restart policy is
    ``Always`` (Podman does not bring pods back after a reboot on its own without systemd).
    """

    create: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    start: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.create or self.replace or self.remove or self.start)


def plan(desired: Mapping[str, WorkloadSpec], running: Mapping[str, RunningWorkload]) -> Plan:
    """Create what is missing, replace what changed, remove what is no longer desired."""
    create: list[str] = []
    replace: list[str] = []
    keep: list[str] = []
    start: list[str] = []
    for name in sorted(desired):
        current = running.get(name)
        if current is None:
            create.append(name)
        elif current.spec_hash != spec_hash(desired[name]):
            replace.append(name)
        else:
            keep.append(name)
            if current.restart_policy == "Always" and current.status in NOT_RUNNING:
                start.append(name)
    remove = sorted(name for name in running if name not in desired)
    return Plan(tuple(create), tuple(replace), tuple(remove), tuple(keep), tuple(start))

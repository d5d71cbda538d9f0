"""Is a new version healthy yet, failed, or still to be watched? Pure, given what the runtime
read and what the probes answered; the runtime runs the probes that
:meth:`GateWatch.probes_due` names (:mod:`flotta.agent.probing`).

A workload passes when every application container runs (or completed with exit code 0 under
a restart policy that leaves it so) for ``stabilizationSeconds`` without an exit or a restart,
and its probes let it (:mod:`flotta.agent.probe_schedule`: its startup probe passed, it is
ready, its liveness probe's latest run succeeded). It fails at the first of: a startup or
liveness probe failed ``failureThreshold`` times in a row (``health-check-failed``, with the
probe's answer), a container exited non-zero, died, or exited at all under
``restartPolicy: Always`` (``container-exited``), it was restarted (``crash-loop``: Podman
restarts at once, so a rising restart count or a new start time is the loop), or
``timeoutSeconds`` went by since the apply started (``timed-out``, with what it waited for: a
readiness probe that never passes ends so, with its latest answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flotta.agent.probe_schedule import ContainerProbes, ProbeResult
from flotta.agent.runtime import ContainerHealth
from flotta.schemas.probes import Probe
from flotta.schemas.wire import HealthGate
from flotta.schemas.wire.status import FailureReason

MAX_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class Failure:
    reason: FailureReason
    workload: str = ""
    container: str = ""
    exit_code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool = False
    failure: Failure | None = None
    waiting_for: str = ""  # while neither: what is not healthy yet, for a person


@dataclass
class GateWatch:
    """One verification of the workloads an apply touched. ``elapsed`` and ``now`` are
    seconds on the caller's monotonic clock from the start of the apply."""

    gates: Mapping[str, HealthGate]  # touched workload -> its gate
    probes: Mapping[str, Mapping[str, Sequence[Probe]]] = field(default_factory=dict)
    # ^ workload -> container name -> its probes
    first_start: dict[str, str] = field(default_factory=dict)  # container id -> StartedAt
    probing: dict[str, ContainerProbes] = field(default_factory=dict)  # container id -> ...

    def probes_due(
        self, workload: str, containers: Sequence[ContainerHealth], now: float
    ) -> list[tuple[ContainerHealth, Probe]]:
        """The running containers' probes whose time has come."""
        due = []
        for container in containers:
            probing = self._probing(workload, container)
            if probing is None or container.state != "running":
                continue
            for probe in probing.due(container.running_for or 0.0, now):
                due.append((container, probe))
        return due

    def probed(
        self, container_id: str, probe: Probe, result: ProbeResult | None, now: float
    ) -> None:
        """A probe ran (``result`` None: it could not be run)."""
        probing = self.probing.get(container_id)
        if probing is not None:
            probing.record(probe, result, now)

    def verdict(
        self, observed: Mapping[str, Sequence[ContainerHealth] | None], elapsed: float
    ) -> Verdict:
        """``observed``: touched workload -> its containers (None: no pod yet)."""
        waiting: dict[str, list[str]] = {}  # workload -> what is not healthy yet
        for name in sorted(self.gates):
            containers = observed.get(name)
            if not containers:
                waiting[name] = ["no pod"]
                continue
            for container in containers:
                failure = self._failure(name, container)
                if failure is not None:
                    return Verdict(failure=failure)
                why = self._not_ready(name, container, self.gates[name])
                if why:
                    waiting.setdefault(name, []).append(f"{container.name}: {why}")
        if not waiting:
            return Verdict(healthy=True)
        for name, reasons in waiting.items():
            timeout = self.gates[name].timeout_seconds
            if elapsed >= timeout:
                message = f"not healthy within {timeout} s: " + "; ".join(reasons)
                return Verdict(failure=Failure("timed-out", name, message=message[:MAX_MESSAGE]))
        return Verdict(
            waiting_for="; ".join(f"{name}: {', '.join(why)}" for name, why in waiting.items())
        )

    def _probing(self, workload: str, container: ContainerHealth) -> ContainerProbes | None:
        probing = self.probing.get(container.container_id)
        if probing is None:
            probes = self.probes.get(workload, {}).get(container.name)
            if not probes:
                return None
            probing = self.probing[container.container_id] = ContainerProbes(probes)
        return probing

    def _failure(self, workload: str, container: ContainerHealth) -> Failure | None:
        first = self.first_start.setdefault(container.container_id, container.started_at)
        probing = self._probing(workload, container)
        failed = probing.failure() if probing is not None else None
        if failed is not None:
            message = f"container {container.name}: {failed.describe()}"
            return Failure(
                "health-check-failed", workload, container.name, message=message[:MAX_MESSAGE]
            )
        exited = container.state == "exited" and (
            container.exit_code or container.restart_policy == "Always"
        )
        if container.state == "dead" or exited:
            detail = container.error or f"exited with code {container.exit_code}"
            if not container.exit_code and not container.error:
                detail += " under restartPolicy Always"
            return Failure(
                "container-exited",
                workload,
                container.name,
                container.exit_code,
                f"container {container.name} {detail}"[:MAX_MESSAGE],
            )
        restarted = container.restart_count > 0 or (
            container.started_at and first and container.started_at != first
        )
        if restarted:
            return Failure(
                "crash-loop",
                workload,
                container.name,
                container.exit_code or None,
                f"container {container.name} restarted ({container.restart_count} restarts"
                f", last exit code {container.exit_code})",
            )
        return None

    def _not_ready(self, workload: str, container: ContainerHealth, gate: HealthGate) -> str:
        if container.state == "exited":
            return ""  # completed with exit code 0 under a policy that leaves it so
        if container.state != "running":
            return container.state
        if (container.running_for or 0.0) < gate.stabilization_seconds:
            return f"running for {container.running_for or 0.0:.0f} s"
        probing = self._probing(workload, container)
        return probing.waiting_for() if probing is not None else ""


def gates_for(
    touched: Sequence[str], workload_gates: Mapping[str, HealthGate | None], default: HealthGate
) -> dict[str, HealthGate]:
    return {name: workload_gates.get(name) or default for name in touched}

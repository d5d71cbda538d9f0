"""Is a new version healthy yet, failed, or still to be watched? Pure, given what the runtime
read; the runtime runs the health checks that :meth:`GateWatch.probes_due` names.

A workload passes when every application container runs (or completed with exit code 0 under
a restart policy that leaves it so) for ``stabilizationSeconds`` without an exit or a restart,
and its health check passed (Podman 4.3's ``kube play`` makes one of a ``livenessProbe``).
It fails at the first of: its health check failed ``retries`` times in a row
(``health-check-failed``, with the probe's output), a container exited non-zero, died, or
exited at all under ``restartPolicy: Always`` (``container-exited``), it was restarted
(``crash-loop``: Podman restarts at once, so a rising restart count or a new start time is the
loop), or ``timeoutSeconds`` went by since the apply started (``timed-out``).

The agent runs the checks itself at the probe's period, so they are judged the same with or
without systemd timers on the device; the count of failures in a row is Podman's
(``FailingStreak``: none are counted in the start period, ``initialDelaySeconds``), because
Podman acts on it: the check that reaches ``retries`` stops the container and restarts it, or
leaves it stopped. A failed health check comes first, as the exit or restart that follows it
is its consequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flotta.agent.runtime import ContainerHealth
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
    first_start: dict[str, str] = field(default_factory=dict)  # container id -> StartedAt
    passed: dict[str, bool] = field(default_factory=dict)  # container id -> last check passed
    last_probe: dict[str, float] = field(default_factory=dict)  # container id -> when run

    def probes_due(self, containers: Sequence[ContainerHealth], now: float) -> list[str]:
        """Containers with a health check whose period has come round."""
        due = []
        for container in containers:
            interval = container.probe_interval
            if interval is None or container.state != "running":
                continue
            last = self.last_probe.get(container.container_id)
            if last is None or now - last >= interval:
                due.append(container.container_id)
        return due

    def probed(self, container_id: str, passed: bool | None, now: float) -> None:
        """A check ran: passed, failed, or inconclusive (None: it could not run)."""
        self.last_probe[container_id] = now
        if passed is not None:
            self.passed[container_id] = passed

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
                why = self._not_ready(container, self.gates[name])
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

    def _failure(self, workload: str, container: ContainerHealth) -> Failure | None:
        first = self.first_start.setdefault(container.container_id, container.started_at)
        exit_code = container.exit_code or None
        probed = container.probe_interval is not None
        if probed and container.probe_failing_streak >= max(1, container.probe_retries):
            return self._probe_failure(
                workload,
                container,
                f"failed its health check {container.probe_failing_streak} times in a row",
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
            if probed and container.probe_exit_code:
                return self._probe_failure(workload, container, "was restarted by its probe")
            return Failure(
                "crash-loop",
                workload,
                container.name,
                exit_code,
                f"container {container.name} restarted ({container.restart_count} restarts"
                f", last exit code {container.exit_code})",
            )
        return None

    @staticmethod
    def _probe_failure(workload: str, container: ContainerHealth, what: str) -> Failure:
        output = container.probe_output.strip()
        message = f"container {container.name} {what}"
        if container.probe_exit_code is not None:
            message += f" (probe exit code {container.probe_exit_code})"
        if output:
            message += f": {output}"
        return Failure("health-check-failed", workload, container.name, None, message[:MAX_MESSAGE])

    def _not_ready(self, container: ContainerHealth, gate: HealthGate) -> str:
        if container.state == "exited":
            return ""  # completed with exit code 0 under a policy that leaves it so
        if container.state != "running":
            return container.state
        if (container.running_for or 0.0) < gate.stabilization_seconds:
            return f"running for {container.running_for or 0.0:.0f} s"
        if container.probe_interval is not None and not self.passed.get(container.container_id):
            output = container.probe_output.strip()
            return "health check not passed yet" + (f" ({output[:200]})" if output else "")
        return ""


def gates_for(
    touched: Sequence[str], workload_gates: Mapping[str, HealthGate | None], default: HealthGate
) -> dict[str, HealthGate]:
    return {name: workload_gates.get(name) or default for name in touched}

"""When a container's probes run during a health gate, and what their results add up to.
Pure; :mod:`flotta.agent.probing` runs them.

As Kubernetes has it, as far as it applies to a gate: a probe first runs
``initialDelaySeconds`` after the container started, then every ``periodSeconds``. While a
startup probe has not passed, the other probes do not run; it passes at its first success and
then runs no more, and ``failureThreshold`` failures in a row fail it (so it bounds the
startup to about ``failureThreshold * periodSeconds``). A readiness probe makes the container
ready after ``successThreshold`` successes in a row and not ready after ``failureThreshold``
failures in a row; it never fails the container by itself. A liveness probe fails the
container after ``failureThreshold`` failures in a row. For the gate a container with a
liveness probe is healthy only while the probe's latest run succeeded, so a version is never
taken as good on a liveness probe that has not run yet or is failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flotta.schemas.probes import Kind, Probe

MAX_ANSWER = 1024
ORDER: tuple[Kind, ...] = ("startup", "readiness", "liveness")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    answer: str = ""  # what the probe got, for a person: output, HTTP status and body, error


@dataclass
class ProbeState:
    probe: Probe
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    last_run: float | None = None  # on the gate's clock
    last: ProbeResult | None = None
    passed: bool = False  # startup: passed; readiness: ready; liveness: its latest run succeeded

    def record(self, result: ProbeResult, now: float) -> None:
        self.last_run, self.last = now, result
        probe = self.probe
        if result.ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= probe.success_threshold:
                self.passed = True
            return
        self.successes, self.failures = 0, self.failures + 1
        if probe.kind == "liveness" or (
            probe.kind == "readiness" and self.failures >= probe.failure_threshold
        ):
            self.passed = False

    @property
    def failed(self) -> bool:
        """Failures enough to fail the container (never for a readiness probe)."""
        return self.probe.kind != "readiness" and self.failures >= self.probe.failure_threshold

    def describe(self) -> str:
        """Where the probe stands, with its latest answer."""
        if self.last is None:
            return f"{self.probe} has not run yet"
        if self.last.ok:
            state = f"succeeded {self.successes} of {self.probe.success_threshold} times"
        else:
            state = f"failed {self.failures} times in a row"
        answer = self.last.answer.strip()[:MAX_ANSWER]
        return f"{self.probe} {state}" + (f": {answer}" if answer else "")


class ContainerProbes:
    """The probes of one container (one run of it: a restart fails the gate anyway)."""

    def __init__(self, probes: Sequence[Probe]) -> None:
        self.states = {probe.kind: ProbeState(probe) for probe in probes}

    def due(self, running_for: float, now: float) -> list[Probe]:
        startup = self.states.get("startup")
        if startup is not None and not startup.passed:
            candidates = [startup]
        else:
            candidates = [self.states[kind] for kind in ORDER[1:] if kind in self.states]
        return [
            state.probe
            for state in candidates
            if running_for >= state.probe.initial_delay
            and (state.last_run is None or now - state.last_run >= state.probe.period)
        ]

    def record(self, probe: Probe, result: ProbeResult | None, now: float) -> None:
        """``result`` None: the probe could not be run (the agent's trouble, not the
        container's); it is tried again a period later."""
        state = self.states.get(probe.kind)
        if state is None or state.probe != probe:
            return
        if result is None:
            state.last_run = now
        else:
            state.record(result, now)

    def failure(self) -> ProbeState | None:
        for kind in ("startup", "liveness"):
            state = self.states.get(kind)
            if state is not None and state.failed:
                return state
        return None

    def waiting_for(self) -> str:
        """Why the probes do not let the container count as healthy yet ("": they do)."""
        for kind in ORDER:
            state = self.states.get(kind)
            if state is not None and not state.passed:
                return ("not ready: " if kind == "readiness" else "") + state.describe()
        return ""

"""One simulated device's behaviour, without I/O: what it sends in answer to what it receives.

It speaks the contract as the real agent does (``flotta.schemas.wire``): it applies a desired
state by acknowledging its version and reporting its workloads as running (or failed, when
told to fail), heartbeats, and produces numbered metric batches that it keeps while offline and
sends when it is back.

Failures can be injected (:class:`FaultRule`): a share of the devices fails a given image or
version. Such a device goes through the agent's transaction: it applies the version (reports it
as ``applyingVersion``), runs it until it fails (after ``after`` seconds for a container that
exits or a probe that fails; at the health gate's ``timeoutSeconds`` for a version that never
becomes healthy), then runs its last good version again, reports the version as ``failed``
(with a reason, the workload and container, and ``rolledBack``) with the events
``VersionFailed`` and ``VersionRolledBack``, and does not apply that version again unless a
desired state carries a greater retry token than the one it failed under (as the agent); a
newer version is applied as usual. The device
holds no timer: :attr:`SimulatedDevice.transaction` says when the failure is due, and whoever
runs the device calls :meth:`SimulatedDevice.fail_transaction` then. In mode ``silent`` the
device stops reporting instead, as a device that hangs. A version without a fault passes its
health gate at once (the stabilisation period is not simulated).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import msgspec

from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import (
    ConnectionState,
    DesiredState,
    DeviceEvent,
    MetricSample,
    MetricsBatch,
    StatusReport,
    VersionFailure,
    WorkloadReport,
)
from flotta.schemas.wire.status import WorkloadPhase, failure_place

FaultMode = Literal["exit", "health-check", "timeout", "silent"]


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A share of the devices fails every desired state that runs ``image`` (a substring of a
    container image) or that has ``version``: ``after`` seconds into the apply (modes ``exit``
    and ``health-check``; at most the health gate's timeout), or at the gate's timeout (mode
    ``timeout``: never healthy)."""

    image: str = ""
    version: str = ""
    share: float = 1.0
    mode: FaultMode = "exit"
    after: float = 0.0

    def picks(self, device_id: str) -> bool:
        """Whether the device is in the failing share (the same devices every time)."""
        digest = hashlib.sha256(f"fault/{device_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.share

    def hits(self, device_id: str, desired: DesiredState) -> tuple[str, str] | None:
        """(workload, container) the rule fails in this desired state, or None."""
        if not self.picks(device_id):
            return None
        for workload in desired.workloads:
            for container in workload.pod_spec.get("containers") or ():
                if not isinstance(container, dict):
                    continue
                image = str(container.get("image", ""))
                if (self.image and self.image in image) or (
                    self.version and self.version == desired.version
                ):
                    return workload.name, str(container.get("name", ""))
        if self.version and self.version == desired.version:
            return "", ""
        return None


def first_hit(
    rules: Sequence[FaultRule], device_id: str, desired: DesiredState
) -> tuple[FaultRule, str, str] | None:
    for rule in rules:
        hit = rule.hits(device_id, desired)
        if hit is not None:
            return rule, *hit
    return None


AGENT_VERSION = "flotta-simulator/1"


@dataclass(frozen=True, slots=True)
class Transaction:
    """A version being applied that will fail: how, and how many seconds after its start."""

    version: str
    seconds: float
    failure: VersionFailure  # its time is set when it fails


def failing_transaction(
    rule: FaultRule, workload: str, container: str, desired: DesiredState, now: datetime
) -> Transaction:
    """The apply of ``desired`` that fails as ``rule`` says (under its retry token)."""
    gate = next((w.health for w in desired.workloads if w.name == workload), None)
    timeout = float((gate or desired.configuration.health).timeout_seconds)
    if rule.mode == "timeout":
        return Transaction(
            desired.version,
            timeout,
            VersionFailure(
                version=desired.version,
                reason="timed-out",
                workload=workload,
                message=f"not healthy within {timeout:.0f} s",
                time=now,
                retry=desired.retry,
            ),
        )
    exited = rule.mode == "exit"
    return Transaction(
        desired.version,
        min(max(rule.after, 0.0), timeout),
        VersionFailure(
            version=desired.version,
            reason="container-exited" if exited else "health-check-failed",
            workload=workload,
            container=container,
            exit_code=1 if exited else None,
            message="exited with code 1" if exited else "probe failed: connection refused",
            time=now,
            retry=desired.retry,
        ),
    )


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass
class SimulatedDevice:
    device_id: str
    heartbeat_seconds: float = 60.0
    metrics_batch_size: int = 10
    max_buffered_batches: int = 10_000
    applied_version: str = ""
    phases: dict[str, WorkloadPhase] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    faults: tuple[FaultRule, ...] = ()
    failed: VersionFailure | None = None  # the latest version that failed, never applied again
    transaction: Transaction | None = None  # a version being applied that will fail
    silent_version: str = ""  # a version that made the device stop reporting (mode silent)
    deregistered: bool = False
    rejected_payloads: int = 0
    stream: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    next_sequence: int = 0
    dropped_batches: int = 0
    pending_batches: deque[MetricsBatch] = field(default_factory=deque)
    # monotonic time the last status went out (or was due while offline); as in the agent, any
    # status (the answer to a desired state included) is a heartbeat, and the next one is a
    # full period later
    status_sent_at: float = float("-inf")

    def topic(self, kind: DeviceTopic) -> str:
        return device_topic(self.device_id, kind)

    def birth(self, now: datetime | None = None) -> Outgoing:
        state = ConnectionState(
            state="online",
            time=now or datetime.now(UTC),
            applied_version=self.applied_version,
            agent_version=AGENT_VERSION,
        )
        return Outgoing(self.topic(DeviceTopic.CONNECTION), encode(state), retain=True)

    def will(self, now: datetime | None = None) -> Outgoing:
        state = ConnectionState(
            state="offline", time=now or datetime.now(UTC), reason="connection lost"
        )
        return Outgoing(self.topic(DeviceTopic.CONNECTION), encode(state), retain=True)

    def on_desired(self, payload: bytes, now: datetime | None = None) -> list[Outgoing]:
        """Apply a desired state; answer with a status report when anything changed. A version
        that will fail leaves :attr:`transaction` set."""
        if not payload:
            return []
        try:
            desired = decode(DesiredState, payload)
        except PayloadError:
            self.rejected_payloads += 1
            return []
        if desired.deregister:
            self.deregistered = True
            self.transaction = None
            self.phases.clear()
            return []
        now = now or datetime.now(UTC)
        if desired.version == self.applied_version:
            self.silent_version = ""
            if self.transaction is None:
                return []
            self.transaction = None  # back to the good version: the apply is abandoned
            return [self.status(now)]
        if self.transaction is not None and desired.version == self.transaction.version:
            return []  # being applied already
        failed = self.failed
        if (
            failed is not None
            and desired.version == failed.version
            and desired.retry <= failed.retry
        ):
            return []  # as the agent: a failed version is applied again only on a retry
        hit = first_hit(self.faults, self.device_id, desired)
        if hit is not None:
            rule, workload, container = hit
            if rule.mode == "silent":
                self.transaction = None
                self.silent_version = desired.version
                return []
            self.silent_version = ""
            self.transaction = failing_transaction(rule, workload, container, desired, now)
            return [self.status(now)]
        self.silent_version = ""
        self.transaction = None
        self.failed = None  # a newer version applied healthy
        self.heartbeat_seconds = float(desired.configuration.heartbeat.period_seconds)
        wanted = {w.name for w in desired.workloads}
        self.phases = {
            name: ("Failed" if name in self.failing else "Running") for name in sorted(wanted)
        }
        self.applied_version = desired.version
        out = [self.status(now)]
        out += [
            self.event("WorkloadFailed", f"workload {n} failed", n, now)
            for n in self.failing & wanted
        ]
        return out

    @property
    def silent(self) -> bool:
        """Whether the device stopped reporting (an injected ``silent`` fault)."""
        return bool(self.silent_version)

    def fail_transaction(self, version: str, now: datetime | None = None) -> list[Outgoing]:
        """The version being applied fails now: back on the last good version, reported as the
        agent reports it (nothing when that version is no longer being applied)."""
        transaction = self.transaction
        if transaction is None or transaction.version != version:
            return []
        now = now or datetime.now(UTC)
        self.transaction = None
        failure = msgspec.structs.replace(transaction.failure, time=now, rolled_back=True)
        self.failed = failure
        where = failure_place(failure.workload, failure.container, failure.exit_code)
        back_to = self.applied_version or "no workloads"
        return [
            self.status(now),
            self.event(
                "VersionFailed",
                f"version {version} failed ({failure.reason}){where}: {failure.message}; "
                "rolling back",
                failure.workload,
                now,
            ),
            self.event(
                "VersionRolledBack",
                f"rolled back from version {version} to {back_to}",
                failure.workload,
                now,
                type_="Normal",
            ),
        ]

    def fail(self, workload: str, now: datetime | None = None) -> list[Outgoing]:
        """Make a workload fail now (a real change the control plane must show)."""
        self.failing.add(workload)
        if workload not in self.phases:
            return []
        self.phases[workload] = "Failed"
        now = now or datetime.now(UTC)
        return [
            self.status(now),
            self.event("WorkloadFailed", f"workload {workload} failed", workload, now),
        ]

    def status(self, now: datetime | None = None) -> Outgoing:
        report = StatusReport(
            time=now or datetime.now(UTC),
            applied_version=self.applied_version,
            applying_version=self.transaction.version if self.transaction is not None else "",
            heartbeat_period_seconds=max(1, int(self.heartbeat_seconds)),
            workloads=[WorkloadReport(name=n, phase=p) for n, p in self.phases.items()],
            failed=self.failed,
        )
        return Outgoing(self.topic(DeviceTopic.STATUS), encode(report))

    def status_sent(self, at: float) -> None:
        self.status_sent_at = at

    def next_heartbeat(self) -> float:
        """When the next heartbeat is due (monotonic time)."""
        return self.status_sent_at + self.heartbeat_seconds

    def event(
        self,
        reason: str,
        message: str,
        workload: str,
        now: datetime,
        *,
        type_: Literal["Normal", "Warning"] = "Warning",
    ) -> Outgoing:
        event = DeviceEvent(
            id=uuid.uuid4().hex,
            time=now,
            type=type_,
            reason=reason,
            message=message,
            workload=workload,
        )
        return Outgoing(self.topic(DeviceTopic.EVENTS), encode(event))

    def produce_metrics(self, now_ms: int) -> None:
        """Record one batch of samples into the device's buffer (sent when online)."""
        samples = [
            MetricSample(
                name="flotta_simulated_value",
                labels={"index": str(i)},  # the topic names the device
                value=float(self.next_sequence * self.metrics_batch_size + i),
                timestamp_ms=now_ms,
            )
            for i in range(self.metrics_batch_size)
        ]
        dropped = 0
        if len(self.pending_batches) >= self.max_buffered_batches:
            self.pending_batches.popleft()
            self.dropped_batches += 1
            dropped = self.metrics_batch_size
        batch = MetricsBatch(
            stream=self.stream, sequence=self.next_sequence, samples=samples, dropped=dropped
        )
        self.next_sequence += 1
        self.pending_batches.append(batch)

    def next_metrics(self) -> Outgoing | None:
        """The oldest unacknowledged batch; call :meth:`acknowledged` once the broker took it."""
        if not self.pending_batches:
            return None
        return Outgoing(self.topic(DeviceTopic.METRICS), encode(self.pending_batches[0]))

    def acknowledged(self) -> None:
        self.pending_batches.popleft()

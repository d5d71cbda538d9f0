"""What the operator heard devices report of their versions, straight from their MQTT status
reports: pure (no I/O; time comes in as an argument).

A rollout waits, batch after batch, for devices to run the new revision healthy. Read from the
EdgeDevice statuses only, that waits for the bridge's coalesced, rate-limited writes (the
Kubernetes write budget), so a batch of a large fleet took minutes where the devices needed
seconds. While a rollout is under way the operator also reads the devices' status reports
(:mod:`flotta.operator.report_watch`) and keeps here, per device, only what a rollout needs:
the applied, applying, waiting and failed versions. No Kubernetes write comes of it.

Why the operator reads the reports itself rather than having the bridge forward the versions:
the broker already lets the operator read every ``status`` topic (the contract's ACL), the
reports carry the versions already (nothing new on the wire or between the components), and a
forward from the bridge would add a second channel with its own failure modes (and its own
ordering against the EdgeDevice writes) for the same bytes. Reading costs one decode per
report, only while a rollout is under way.

The EdgeDevice status stays the authority: this store is empty after a start and forgets a
device when its subscription ends, and the rollout reads both (``Rollouts.progress``): a
device counts as updated when either says so.

Bad input is refused and counted, never raised: a report on a topic that is not a device's
status, from a device the operator does not know (its certificate names it: a device can only
publish on its own topics, so a report cannot speak for another id), a payload the contract
refuses, a report older than one already heard, and reports beyond a device's rate (so
nothing one device sends costs the others more than a dictionary look-up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flotta.rate_limit import TokenBucket
from flotta.schemas.codec import decode
from flotta.schemas.errors import ContractError, PayloadError
from flotta.schemas.topics import DeviceTopic, parse_device_topic
from flotta.schemas.wire.status import StatusReport, VersionFailure

# Results of taking one report (the label of flotta_operator_status_reports_total).
CHANGED = "changed"  # a version a rollout reads changed
SAME = "same"
STALE = "stale"  # older than the report already heard
INVALID = "invalid"  # not a status topic, or a payload the contract refuses
UNKNOWN = "unknown-device"
LIMITED = "rate-limited"
RESULTS = (CHANGED, SAME, STALE, INVALID, UNKNOWN, LIMITED)

RATE = 2.0  # reports a second per device, on average (a device reports every 60 s)
BURST = 10.0


@dataclass(frozen=True, slots=True)
class HeardVersions:
    """The versions of one device's latest status report."""

    time: datetime
    applied: str = ""
    applying: str = ""
    waiting: str = ""
    failed: VersionFailure | None = None

    def same_versions(self, other: HeardVersions) -> bool:
        return (self.applied, self.applying, self.waiting, self.failed) == (
            other.applied,
            other.applying,
            other.waiting,
            other.failed,
        )


def heard_of(report: StatusReport) -> HeardVersions:
    return HeardVersions(
        report.time,
        report.applied_version,
        report.applying_version,
        report.waiting_version,
        report.failed,
    )


@dataclass
class VersionReports:
    """The latest versions heard per device id. ``known(device_id)``: whether the operator
    knows the device (an EdgeDevice in some namespace)."""

    known: Callable[[str], bool]
    rate: float = RATE
    burst: float = BURST
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    _heard: dict[str, HeardVersions] = field(default_factory=dict)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, topic: str, payload: bytes, now: float) -> tuple[str, str]:
        """Take one message of a status topic; (result, device id). ``now``: monotonic
        seconds, for the per-device rate."""
        try:
            parsed = parse_device_topic(topic)
        except ContractError:
            return self._count(INVALID), ""
        device_id = parsed.device_id
        if parsed.kind is not DeviceTopic.STATUS:
            return self._count(INVALID), device_id
        if not self.known(device_id):
            return self._count(UNKNOWN), device_id
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = TokenBucket(self.rate, self.burst, now)
        if not bucket.try_take(now):
            return self._count(LIMITED), device_id
        if not payload:
            return self._count(SAME), device_id  # an empty retained message clears, no report
        try:
            report = decode(StatusReport, payload)
        except PayloadError:
            return self._count(INVALID), device_id
        heard = heard_of(report)
        previous = self._heard.get(device_id)
        if previous is not None and heard.time < previous.time:
            return self._count(STALE), device_id
        self._heard[device_id] = heard
        if previous is not None and previous.same_versions(heard):
            return self._count(SAME), device_id
        return self._count(CHANGED), device_id

    def get(self, device_id: str) -> HeardVersions | None:
        return self._heard.get(device_id)

    def forget(self, device_id: str) -> None:
        self._heard.pop(device_id, None)
        self._buckets.pop(device_id, None)

    def clear(self) -> None:
        """Nothing heard any more (the subscription ended: what is kept would grow old)."""
        self._heard.clear()
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._heard)

    def _count(self, result: str) -> str:
        self.counts[result] += 1
        return result

"""The rollout planner: which devices get the new revision, how the batches stand, when the
rollout halts or completes. Pure (no I/O, time comes in as an argument).

The persisted state is small (:class:`RolloutState`, kept in ``status.rollout``): the current
batch, when it started, and for each started batch a *cutoff*. Devices are ordered by a rank,
a hash of the rollout's seed and the device name, so the order is fixed for a rollout and
fresh for the next one. When batch *k* starts, it takes the ``limit`` devices of lowest rank
among those that remain and match its selector, and records the rank of the last one it took:
from then on batch *k* is "the remaining devices that match its selector with a rank up to the
cutoff", the same set after an operator restart, whatever the order devices are listed in.

Rules (docs/rollouts.md says the same for users):

- A device that joins the selection after the rollout started (``DeviceView.joined``) gets
  the last completed revision until the rollout completes; it is in no batch.
- A device of a started batch gets the new revision as soon as the disruption budget of its
  group allows (groups by ``groupBy`` labels; offline devices and devices that are updating,
  waiting for their window or failed count as unavailable).
- A device that got the new revision and has not passed its health gate ``batchTimeout``
  after it got it counts as failed (``no-report``), offline or not; before that it counts as
  updating. A device waiting for its update window is pending, never failed.
- A batch succeeds once ``successThreshold`` of it runs the new revision healthy; it halts
  the rollout as soon as that share can no longer be reached. An empty batch succeeds.
- Paused: no device gets the new revision and no batch starts; a batch may still halt.
- With approval required, batch *n* > 1 starts only once ``approval`` names this revision
  and a batch number of at least *n*.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from flotta.operator.selectors import Selector, compile_selector
from flotta.schemas.crd.rollout import (
    MAX_FAILURE_SAMPLE,
    RolloutBatch,
    RolloutPhase,
    RolloutPolicy,
    parse_duration,
    percent,
    scaled,
)

Progress = Literal["none", "updating", "waiting", "updated", "failed"]
NO_REPORT = "no-report"


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    workload: str = ""
    container: str = ""
    exit_code: int | None = None
    message: str = ""
    rolled_back: bool | None = None
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device the rollout covers, as the operator sees it now."""

    name: str
    labels: Mapping[str, str]
    online: bool = True
    joined: bool = False  # entered the selection after the rollout started
    admitted_at: datetime | None = None  # when it got the new revision; None: it did not
    progress: Progress = "none"  # with the new revision (meaningful once admitted)
    failure: Failure | None = None  # why it failed, when progress is failed


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the planner needs again after a restart (``status.rollout``)."""

    phase: RolloutPhase = "Progressing"
    batch: int = -1  # index of the current batch; -1 before the first started
    cutoffs: tuple[int, ...] = ()  # per started batch: the highest rank it took
    start: datetime | None = None
    batch_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    targeted: int = 0
    updated: int = 0
    updating: int = 0
    failed: int = 0
    pending: int = 0
    batch_devices: int = 0
    batch_updated: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    state: RolloutState
    admitted: frozenset[str]  # every device that gets the new revision
    newly_admitted: frozenset[str]
    counts: Counts
    batches: int
    failures: tuple[tuple[str, Failure], ...]  # a sample, by device name
    message: str
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)
    blocked: int = 0  # members of started batches the disruption budget holds back
    batch_members: tuple[str, ...] = ()  # of the current batch
    needed: int = 0  # devices of the current batch that must run the revision healthy
    outcomes: Mapping[str, Progress] = field(default_factory=dict)  # per device, now


def rank(seed: str, device: str) -> int:
    """The device's place in the rollout's order: 64 bits of SHA-256."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{device}".encode()).digest()[:8], "big")


def cutoff_hex(value: int) -> str:
    return f"{value:016x}" if value >= 0 else ""


def cutoff_value(text: str) -> int:
    try:
        return int(text, 16) if text else -1
    except ValueError:
        return -1


@dataclass(frozen=True, slots=True)
class _Batch:
    selector: Selector | None
    limit: int | str | None


def batches_of(policy: RolloutPolicy) -> list[_Batch]:
    """The policy's batches, and a last one for the devices they leave (unless the last batch
    already takes every device left)."""
    batches = [_batch(b) for b in policy.batches]
    last = batches[-1] if batches else None
    if last is None or last.selector is not None or last.limit not in (None, "100%"):
        batches.append(_Batch(None, None))
    return batches


def _batch(batch: RolloutBatch) -> _Batch:
    selector = compile_selector(batch.selector) if batch.selector is not None else None
    return _Batch(selector, batch.limit)


def _approved(policy: RolloutPolicy, revision: int, batch_number: int) -> bool:
    approval = policy.approval
    if approval is None or not approval.required or batch_number <= 1:
        return True
    return approval.revision == revision and (approval.batch or 0) >= batch_number


@dataclass
class _Work:
    """The planner's scratch state for one evaluation."""

    policy: RolloutPolicy
    devices: dict[str, DeviceView]
    ranks: Mapping[str, int]
    batches: list[_Batch]
    now: datetime
    members: list[list[str]] = field(default_factory=list)  # per started batch
    timeout: timedelta = timedelta(0)
    taken: set[str] = field(default_factory=set)  # members of started batches
    eligible: list[str] = field(default_factory=list)  # devices batches may take

    def __post_init__(self) -> None:
        self.timeout = parse_duration(self.policy.batch_timeout)
        self.eligible = [
            name
            for name, view in self.devices.items()
            if not view.joined or view.admitted_at is not None
        ]

    def add_batch(self, members: list[str]) -> None:
        self.members.append(members)
        self.taken.update(members)

    def place(self, names: list[str]) -> None:
        """Devices that joined the current batch after it started."""
        self.members[-1].extend(names)
        self.taken.update(names)

    def timed_out(self, view: DeviceView) -> bool:
        return view.admitted_at is not None and self.now - view.admitted_at >= self.timeout

    def outcome(self, name: str, admitted: set[str]) -> Progress:
        view = self.devices[name]
        if name not in admitted:
            return "none"
        if view.progress == "updating" or (view.progress == "none" and view.admitted_at):
            return "failed" if self.timed_out(view) else "updating"
        return view.progress if view.progress != "none" else "updating"

    def remaining(self) -> list[str]:
        taken = self.taken
        return [name for name in self.eligible if name not in taken]

    def take(self, index: int, cutoff: int) -> list[str]:
        selector = self.batches[index].selector
        ranks = self.ranks
        taken = self.taken
        return [
            name
            for name in self.eligible
            if name not in taken
            and ranks[name] <= cutoff
            and (selector is None or selector.matches(self.devices[name].labels))
        ]

    def start(self, index: int) -> int:
        """The cutoff of batch ``index`` starting now."""
        batch = self.batches[index]
        remaining = self.remaining()
        candidates = sorted(
            (
                name
                for name in remaining
                if batch.selector is None or batch.selector.matches(self.devices[name].labels)
            ),
            key=lambda n: self.ranks[n],
        )
        limit = (
            len(candidates)
            if batch.limit is None
            else scaled(batch.limit, len(remaining), round_up=True)
        )
        taken = candidates[: max(0, limit)]
        return self.ranks[taken[-1]] if taken else -1


def ranks_of(seed: str, names: Iterable[str], known: Mapping[str, int]) -> dict[str, int]:
    """The ranks of ``names``, from ``known`` where it has them."""
    return {name: known[name] if name in known else rank(seed, name) for name in names}


def plan(
    policy: RolloutPolicy,
    state: RolloutState,
    devices: Sequence[DeviceView],
    *,
    seed: str,
    revision: int,
    now: datetime,
    ranks: Mapping[str, int] | None = None,
) -> Plan:
    """Evaluate the rollout now: admissions, batch transitions, halt or completion.
    ``ranks``: the devices' ranks for this seed, computed before (missing ones are
    computed)."""
    views = {view.name: view for view in devices}
    if ranks is None or any(name not in ranks for name in views):
        ranks = ranks_of(seed, views, ranks or {})
    work = _Work(policy, views, ranks, batches_of(policy), now)
    events: list[tuple[str, str, str]] = []
    if state.start is None:
        state = replace(state, start=now)
    phase = state.phase
    cutoffs = list(state.cutoffs)
    batch = state.batch
    batch_start = state.batch_start
    batch = min(batch, len(cutoffs) - 1)
    for index, cutoff in enumerate(cutoffs):
        work.add_batch(work.take(index, cutoff))
    admitted = {name for name, view in views.items() if view.admitted_at is not None}
    # Devices that got the revision but fell out of every started batch (their labels
    # changed) still count, in the current batch.
    if work.members:
        work.place(sorted(admitted - work.taken))
    threshold = percent(policy.success_threshold)
    total = len(work.batches)

    def batch_stats(index: int) -> tuple[int, int, int]:
        members = work.members[index]
        outcomes = [work.outcome(name, admitted) for name in members]
        updated = outcomes.count("updated")
        failed = outcomes.count("failed")
        return len(members), updated, failed

    def begin(index: int) -> None:
        cutoff = work.start(index)
        cutoffs.append(cutoff)
        work.add_batch(work.take(index, cutoff))
        size = len(work.members[index])
        message = f"batch {index + 1} of {total} started with {size} devices"
        events.append(("Normal", "BatchStarted", f"{message} (revision {revision})"))

    def hold(reason: RolloutPhase) -> RolloutPhase:
        if reason != state.phase:
            events.append(("Normal", reason, _message_for(reason, batch, total, revision)))
        return reason

    newly: set[str] = set()
    blocked = 0
    while phase not in ("Halted", "Complete"):
        if batch < 0:
            if policy.paused:
                phase = hold("Paused")
                break
            batch = 0
            batch_start = now
            begin(batch)
        size, updated, failed = batch_stats(batch)
        needed = math.ceil(threshold * size / 100 - 1e-9)
        if updated >= needed:
            if batch + 1 >= total:
                phase = "Complete"
                events.append(("Normal", "RolloutComplete", f"revision {revision} rolled out"))
                break
            if not _approved(policy, revision, batch + 2):
                phase = hold("WaitingForApproval")
                break
            if policy.paused:
                phase = hold("Paused")
                break
            events.append(
                (
                    "Normal",
                    "BatchSucceeded",
                    f"batch {batch + 1} of {total}: {updated} of {size} devices updated",
                )
            )
            batch += 1
            batch_start = now
            begin(batch)
            continue
        if size - failed < needed:
            phase = "Halted"
            events.append(
                (
                    "Warning",
                    "RolloutHalted",
                    f"batch {batch + 1} of {total}: {failed} of {size} devices failed revision "
                    f"{revision}, below the success threshold of {policy.success_threshold}",
                )
            )
            break
        if policy.paused:
            phase = hold("Paused")
            break
        phase = "Progressing"
        newly, blocked = _admit(work, admitted)
        admitted |= newly
        break

    outcomes = {name: work.outcome(name, admitted) for name in views}
    counts = _counts(work, outcomes, batch)
    failures = tuple(
        (name, views[name].failure or Failure(NO_REPORT, message="no healthy report in time"))
        for name in sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    )[:MAX_FAILURE_SAMPLE]
    new_state = RolloutState(phase, batch, tuple(cutoffs), state.start, batch_start)
    members = work.members[batch] if 0 <= batch < len(work.members) else []
    return Plan(
        state=new_state,
        admitted=frozenset(admitted),
        newly_admitted=frozenset(newly),
        counts=counts,
        batches=total,
        failures=failures,
        message=_message(new_state, counts, total, policy, revision, blocked),
        events=tuple(events),
        blocked=blocked,
        batch_members=tuple(members),
        needed=math.ceil(threshold * len(members) / 100 - 1e-9),
        outcomes=outcomes,
    )


def _admit(work: _Work, admitted: set[str]) -> tuple[set[str], int]:
    """Members of started batches that get the revision now, within the disruption budget."""
    waiting = sorted(
        (name for members in work.members for name in members if name not in admitted),
        key=lambda n: work.ranks[n],
    )
    budget = work.policy.disruption_budget
    if budget is None:
        return set(waiting), 0
    group_of = {
        name: tuple(view.labels.get(key, "") for key in budget.group_by)
        for name, view in work.devices.items()
    }
    sizes: defaultdict[tuple[str, ...], int] = defaultdict(int)
    unavailable: defaultdict[tuple[str, ...], int] = defaultdict(int)
    for name, view in work.devices.items():
        group = group_of[name]
        sizes[group] += 1
        outcome = work.outcome(name, admitted)
        if not view.online or outcome in ("updating", "waiting", "failed"):
            unavailable[group] += 1
    newly: set[str] = set()
    blocked = 0
    for name in waiting:
        group = group_of[name]
        size = sizes[group]
        cost = 1 if work.devices[name].online else 0
        allowed = size
        if budget.max_unavailable is not None:
            allowed = max(1, scaled(budget.max_unavailable, size, round_up=False))
        floor = 0
        if budget.min_available is not None:
            floor = scaled(budget.min_available, size, round_up=True)
        if unavailable[group] + cost <= allowed and size - unavailable[group] - cost >= floor:
            unavailable[group] += cost
            newly.add(name)
        else:
            blocked += 1
    return newly, blocked


def _counts(work: _Work, outcomes: Mapping[str, Progress], batch: int) -> Counts:
    members = work.members[batch] if 0 <= batch < len(work.members) else []
    tally = Counter(outcomes.values())
    return Counts(
        targeted=len(outcomes),
        updated=tally["updated"],
        updating=tally["updating"],
        failed=tally["failed"],
        pending=tally["none"] + tally["waiting"],
        batch_devices=len(members),
        batch_updated=sum(1 for name in members if outcomes[name] == "updated"),
    )


def _message(
    state: RolloutState,
    counts: Counts,
    total: int,
    policy: RolloutPolicy,
    revision: int,
    blocked: int,
) -> str:
    number = state.batch + 1
    match state.phase:
        case "Complete":
            return f"revision {revision}: {counts.updated} of {counts.targeted} devices updated"
        case "Halted":
            return (
                f"halted in batch {number} of {total}: {counts.failed} devices failed; no "
                "further device gets this revision until the spec changes or a retry "
                "(annotation flotta.io/retry-rollout)"
            )
        case "Paused":
            return f"paused in batch {max(number, 1)} of {total} (spec.rolloutPolicy.paused)"
        case "WaitingForApproval":
            return (
                f"batch {number} of {total} done; batch {number + 1} waits for approval: set "
                f"spec.rolloutPolicy.approval to revision {revision}, batch {number + 1}"
            )
    held = f"; {blocked} held back by the disruption budget" if blocked else ""
    return (
        f"batch {number} of {total}: {counts.batch_updated} of {counts.batch_devices} "
        f"updated, {policy.success_threshold} needed{held}"
    )


def _message_for(phase: RolloutPhase, batch: int, total: int, revision: int) -> str:
    if phase == "WaitingForApproval":
        return f"revision {revision}: batch {batch + 2} of {total} waits for approval"
    return f"revision {revision}: paused in batch {max(batch + 1, 1)} of {total}"

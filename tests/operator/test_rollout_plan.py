"""The rollout planner, driven tick by tick over a simulated fleet: batches, thresholds,
halts, joins, offline and window-waiting devices, the disruption budget, pause and approval,
and the same plan again from the persisted state (an operator restart)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flotta.operator.rollout_plan import (
    DeviceView,
    Failure,
    Plan,
    Progress,
    RolloutState,
    plan,
)
from flotta.schemas.crd.rollout import RolloutPolicy

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TICK = timedelta(seconds=10)


def policy(**fields: Any) -> RolloutPolicy:
    return RolloutPolicy.model_validate(fields)


@dataclass
class Fleet:
    """Devices that act on what the planner gives them, one tick later."""

    names: list[str]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    bad: Callable[[str], bool] = lambda _name: False  # fails the new revision
    offline: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)  # wait for their update window
    joined: set[str] = field(default_factory=set)
    admitted_at: dict[str, datetime] = field(default_factory=dict)
    ever_admitted: set[str] = field(default_factory=set)

    def views(self, now: datetime) -> list[DeviceView]:
        out = []
        for name in self.names:
            at = self.admitted_at.get(name)
            progress: Progress = "none"
            failure = None
            if at is not None and now > at and name not in self.offline:
                if name in self.waiting:
                    progress = "waiting"
                elif self.bad(name):
                    progress = "failed"
                    failure = Failure("container-exited", workload="w", exit_code=1)
                else:
                    progress = "updated"
            elif at is not None:
                progress = "updating"
            out.append(
                DeviceView(
                    name,
                    self.labels.get(name, {}),
                    online=name not in self.offline,
                    joined=name in self.joined,
                    admitted_at=at,
                    progress=progress,
                    failure=failure,
                )
            )
        return out

    def run(
        self,
        rollout: RolloutPolicy,
        *,
        ticks: int = 60,
        state: RolloutState | None = None,
        revision: int = 2,
        shuffle: bool = False,
        until: Callable[[Plan], bool] = lambda p: p.state.phase in ("Halted", "Complete"),
        each: Callable[[Plan, datetime], None] = lambda _p, _t: None,
    ) -> tuple[Plan, datetime]:
        state = state or RolloutState()
        now = T0
        result: Plan | None = None
        for _ in range(ticks):
            views = self.views(now)
            if shuffle:
                random.shuffle(views)
            result = plan(rollout, state, views, seed="w-abc", revision=revision, now=now)
            state = result.state
            for name in result.newly_admitted:
                self.admitted_at[name] = now
                self.ever_admitted.add(name)
            each(result, now)
            if until(result):
                break
            now += TICK
        assert result is not None
        return result, now


def names(count: int) -> list[str]:
    return [f"dev-{i:04d}" for i in range(count)]


BATCHES = [{"limit": 1}, {"limit": "10%"}, {"limit": "50%"}]


def test_a_good_version_goes_through_every_batch_in_order() -> None:
    fleet = Fleet(names(100))
    sizes: list[int] = []

    def record(result: Plan, _now: datetime) -> None:
        if result.state.batch + 1 > len(sizes):
            sizes.append(result.counts.batch_devices)

    result, _ = fleet.run(policy(batches=BATCHES, successThreshold="95%"), each=record)
    assert result.state.phase == "Complete"
    assert result.batches == 4
    # 1, then 10% of the 99 left (rounded up), 50% of the 89 left, then the rest
    assert sizes == [1, 10, 45, 44]
    assert result.counts.updated == 100
    assert [e[1] for e in result.events] == ["RolloutComplete"]


def test_a_bad_version_halts_after_the_first_batch_and_goes_no_further() -> None:
    fleet = Fleet(names(100), bad=lambda _name: True)
    result, _ = fleet.run(policy(batches=BATCHES, successThreshold="95%"))
    assert result.state.phase == "Halted"
    assert len(fleet.ever_admitted) == 1
    assert result.counts.failed == 1
    assert result.failures[0][1].reason == "container-exited"
    assert "below the success threshold" in result.events[-1][2]
    again = plan(
        policy(batches=BATCHES),
        result.state,
        fleet.views(T0 + timedelta(hours=1)),
        seed="w-abc",
        revision=2,
        now=T0 + timedelta(hours=1),
    )
    assert again.state.phase == "Halted"
    assert not again.newly_admitted


def test_a_share_of_failures_below_the_threshold_lets_the_rollout_go_on() -> None:
    fleet = Fleet(names(200), bad=lambda name: name.endswith("7"))  # 10 % fail
    result, _ = fleet.run(policy(batches=[{"limit": "50%"}], successThreshold="80%"))
    assert result.state.phase == "Complete"
    assert result.counts.failed == 20
    assert len(result.failures) == 10  # a bounded sample


def test_devices_that_join_during_the_rollout_keep_the_completed_revision() -> None:
    fleet = Fleet(names(20), joined={"dev-0003", "dev-0011"})
    result, _ = fleet.run(policy(batches=[{"limit": "50%"}]))
    assert result.state.phase == "Complete"
    assert fleet.ever_admitted.isdisjoint({"dev-0003", "dev-0011"})
    assert result.counts.pending == 2


def test_an_offline_device_counts_as_failed_only_after_the_batch_timeout() -> None:
    fleet = Fleet(names(10), offline=set(names(10)))
    rollout = policy(batches=[{"limit": 2}], successThreshold="50%", batchTimeout="5m")
    early, now = fleet.run(rollout, ticks=29, until=lambda _p: False)
    assert early.state.phase == "Progressing"
    assert early.counts.updating == 2
    assert early.counts.failed == 0
    late, _ = fleet.run(rollout, ticks=2, state=early.state, until=lambda _p: False)
    # the planner's clock restarts at T0 in run(): advance through the timeout explicitly
    views = fleet.views(now + timedelta(minutes=1))
    final = plan(rollout, early.state, views, seed="w-abc", revision=2, now=now + timedelta(1))
    assert final.state.phase == "Halted"
    assert {reason.reason for _, reason in final.failures} == {"no-report"}
    assert late.state.batch == 0


def test_a_device_waiting_for_its_window_is_pending_not_failed() -> None:
    fleet = Fleet(names(4), waiting=set(names(4)))
    rollout = policy(batches=[{"limit": 2}], successThreshold="100%", batchTimeout="5m")
    result, now = fleet.run(rollout, ticks=5, until=lambda _p: False)
    later = plan(
        rollout,
        result.state,
        fleet.views(now + timedelta(hours=5)),
        seed="w-abc",
        revision=2,
        now=now + timedelta(hours=5),
    )
    assert later.state.phase == "Progressing"
    assert later.counts.failed == 0
    assert later.counts.pending == 4  # two waiting, two not in the rollout yet
    fleet.waiting.clear()  # the window opened
    done, _ = fleet.run(rollout, state=later.state)
    assert done.state.phase == "Complete"


def test_the_disruption_budget_holds_back_devices_per_group() -> None:
    fleet = Fleet(names(12))
    fleet.labels = {n: {"site": f"s{i % 3}"} for i, n in enumerate(fleet.names)}
    rollout = policy(
        batches=[{"limit": "100%"}],
        disruptionBudget={"groupBy": ["site"], "maxUnavailable": 1},
    )
    worst: dict[str, int] = {}

    def check(_result: Plan, now: datetime) -> None:
        updating: dict[str, int] = {}
        for view in fleet.views(now):
            if view.admitted_at is not None and view.progress in ("updating", "none"):
                site = fleet.labels[view.name]["site"]
                updating[site] = updating.get(site, 0) + 1
        for site, count in updating.items():
            worst[site] = max(worst.get(site, 0), count)

    result, _ = fleet.run(rollout, each=check)
    assert result.state.phase == "Complete"
    assert max(worst.values()) == 1


def test_an_offline_device_uses_up_its_group_budget() -> None:
    fleet = Fleet(names(4), offline={"dev-0000"})
    fleet.labels = {name: {"site": "a"} for name in fleet.names}
    rollout = policy(
        batches=[{"limit": "100%"}],
        disruptionBudget={"groupBy": ["site"], "maxUnavailable": 1},
    )
    result, _ = fleet.run(rollout, ticks=3, until=lambda _p: False)
    assert fleet.ever_admitted == {"dev-0000"}  # admitting it costs nothing more
    assert result.blocked == 3
    assert "held back by the disruption budget" in result.message


def test_pause_stops_admissions_and_resume_goes_on() -> None:
    fleet = Fleet(names(20))
    rollout = policy(batches=[{"limit": 2}, {"limit": "50%"}])
    first, _ = fleet.run(rollout, until=lambda p: p.state.batch == 1)
    assert first.state.phase == "Progressing"
    admitted = set(fleet.ever_admitted)
    events: list[str] = []
    paused, _ = fleet.run(
        rollout.model_copy(update={"paused": True}),
        state=first.state,
        ticks=5,
        until=lambda _p: False,
        each=lambda result, _now: events.extend(e[1] for e in result.events),
    )
    assert paused.state.phase == "Paused"
    assert events.count("Paused") == 1  # an event on the change, not on every evaluation
    assert fleet.ever_admitted == admitted
    resumed, _ = fleet.run(rollout, state=paused.state)
    assert resumed.state.phase == "Complete"


def test_approval_is_needed_before_each_later_batch_for_this_revision() -> None:
    fleet = Fleet(names(10))
    waiting = policy(batches=[{"limit": 1}, {"limit": 3}], approval={"required": True})
    result, _ = fleet.run(waiting, ticks=10, until=lambda p: p.state.phase != "Progressing")
    assert result.state.phase == "WaitingForApproval"
    assert len(fleet.ever_admitted) == 1
    assert "approval" in result.message
    stale = waiting.model_copy(
        update={"approval": waiting.approval.model_copy(update={"revision": 1, "batch": 3})}  # type: ignore[union-attr]
    )
    still, _ = fleet.run(stale, state=result.state, ticks=3, until=lambda _p: False)
    assert still.state.phase == "WaitingForApproval"
    approved = waiting.model_copy(
        update={"approval": waiting.approval.model_copy(update={"revision": 2, "batch": 2})}  # type: ignore[union-attr]
    )
    second, _ = fleet.run(
        approved,
        state=still.state,
        ticks=10,
        until=lambda p: p.state.batch == 1 and p.state.phase != "Progressing",
    )
    assert second.state.phase == "WaitingForApproval"
    assert second.state.batch == 1
    assert len(fleet.ever_admitted) == 4


def test_no_devices_or_empty_batches_complete_at_once() -> None:
    result = plan(
        policy(batches=[{"selector": {"matchLabels": {"ring": "canary"}}}]),
        RolloutState(),
        [],
        seed="s",
        revision=1,
        now=T0,
    )
    assert result.state.phase == "Complete"


def _membership(result: Plan, views: list[DeviceView], rollout: RolloutPolicy) -> frozenset[str]:
    again = plan(rollout, result.state, views, seed="w-abc", revision=2, now=T0)
    return again.admitted


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=60),
    limits=st.lists(
        st.one_of(st.integers(min_value=1, max_value=20), st.sampled_from(["10%", "33%", "50%"])),
        min_size=1,
        max_size=4,
    ),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_a_restart_plans_the_same_batches_whatever_the_order(
    count: int, limits: list[int | str], seed: int
) -> None:
    """From the persisted state alone, a new planner (another operator) admits exactly the
    devices the first one did, and no device outside the started batches."""
    random.seed(seed)
    fleet = Fleet(names(count))
    rollout = policy(batches=[{"limit": limit} for limit in limits])
    first, now = fleet.run(rollout, ticks=2, until=lambda _p: False)
    views = fleet.views(now)
    fresh = [replace(v, admitted_at=None, progress="none") for v in views]  # nothing remembered
    random.shuffle(fresh)
    assume(first.state.phase == "Progressing")  # complete: every device has it anyway
    paused = plan(
        rollout.model_copy(update={"paused": True}),
        first.state,
        fresh,
        seed="w-abc",
        revision=2,
        now=now,
    )
    assert paused.admitted == frozenset()  # nobody new, and nothing remembered
    resumed = plan(rollout, first.state, fresh, seed="w-abc", revision=2, now=now)
    # the same batches, so exactly the devices admitted before (and nothing else)
    assert resumed.admitted == frozenset(fleet.ever_admitted) | resumed.newly_admitted
    assert resumed.newly_admitted == frozenset(fleet.ever_admitted)


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=80),
    failing=st.floats(min_value=0.0, max_value=1.0),
    threshold=st.integers(min_value=50, max_value=100),
)
def test_no_device_beyond_a_failed_batch_ever_gets_the_revision(
    count: int, failing: float, threshold: int
) -> None:
    fleet = Fleet(names(count), bad=lambda name: (hash(name) % 1000) / 1000 < failing)
    result, _ = fleet.run(policy(batches=BATCHES, successThreshold=f"{threshold}%"), ticks=100)
    assert result.state.phase in ("Halted", "Complete")
    batches_started = result.state.batch + 1
    if result.state.phase == "Halted":
        assert result.counts.updated + result.counts.updating + result.counts.failed == len(
            fleet.ever_admitted
        )
        assert batches_started <= 4
    else:
        assert fleet.ever_admitted == set(fleet.names)

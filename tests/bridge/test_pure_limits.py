"""Liveness, token buckets, the write coalescer and the event limiter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flotta.bridge.coalescer import WriteCoalescer, WriteKind, refresh_due
from flotta.bridge.event_limit import EventDecision, EventLimiter
from flotta.bridge.liveness import LivenessTracker
from flotta.rate_limit import TokenBucket


def test_liveness_reports_silent_devices_once() -> None:
    tracker: LivenessTracker[str] = LivenessTracker()
    tracker.heard("a", 10, now=0)
    tracker.heard("b", 10, now=0)
    tracker.heard("a", 10, now=20)  # a reports again: deadline moves to 50
    assert tracker.expired(29.9) == []
    assert tracker.expired(30) == ["b"]
    assert tracker.expired(40) == []
    assert tracker.expired(50) == ["a"]
    assert len(tracker) == 0


def test_liveness_pauses_while_the_bridge_cannot_hear() -> None:
    tracker: LivenessTracker[str] = LivenessTracker(missed_periods=3)
    tracker.heard("a", period=10, now=0)  # due at 30
    tracker.heard("b", period=10, now=20)  # due at 50
    tracker.pause(25)
    assert tracker.expired(100) == []  # the bridge was away: silence proves nothing
    tracker.resume(100)  # 75 s away: a is due at 105, b at 125
    assert tracker.deadline("a") == 105
    assert tracker.expired(104) == []
    assert tracker.expired(105) == ["a"]
    tracker.heard("b", period=10, now=110)  # b reported after the outage
    assert tracker.expired(125) == []
    assert tracker.expired(140) == ["b"]
    tracker.resume(150)  # not paused: nothing moves
    tracker.heard("c", period=1, now=150)
    assert tracker.expired(153) == ["c"]


def test_liveness_forget_and_compaction() -> None:
    tracker: LivenessTracker[int] = LivenessTracker(missed_periods=3)
    for i in range(1000):
        tracker.heard(i % 10, 1, now=i)
    assert len(tracker) == 10
    tracker.forget(9)
    assert sorted(tracker.expired(10_000)) == list(range(9))


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.try_take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time(0) == pytest.approx(0.5)
    assert bucket.try_take(0.5)
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0, burst=1, now=0)


def test_coalescer_dedups_and_prefers_changes() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(rate=10, burst=10, refresh_rate=10, now=0)
    writes.refresh("r1")
    writes.changed("c1")
    writes.changed("c1")
    writes.changed("c2")
    writes.refresh("c2")  # a change is queued: the refresh adds nothing
    assert writes.pending == 3
    taken = writes.take(0, limit=10)
    assert taken == [("c1", WriteKind.CHANGE), ("c2", WriteKind.CHANGE), ("r1", WriteKind.REFRESH)]
    assert writes.pending == 0


def test_coalescer_urgent_changes_go_first_and_stay_urgent() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(rate=10, burst=10, refresh_rate=10, now=0)
    writes.refresh("r1")
    writes.changed("c1")
    writes.changed("c2")
    writes.changed("u1", urgent=True)
    writes.changed("c2", urgent=True)  # a queued change becomes urgent
    writes.changed("u1")  # a later ordinary change does not demote it
    writes.refresh("u1")
    assert writes.pending == 4
    assert writes.pending_changes == 3
    assert writes.take(0, limit=10) == [
        ("u1", WriteKind.URGENT),
        ("c2", WriteKind.URGENT),
        ("c1", WriteKind.CHANGE),
        ("r1", WriteKind.REFRESH),
    ]
    writes.changed("u2", urgent=True)
    writes.forget("u2")
    assert writes.pending == 0


def test_coalescer_urgent_changes_share_the_rate_bound() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(rate=2, burst=2, refresh_rate=1, now=0)
    for key in ("a", "b", "c"):
        writes.changed(key, urgent=True)
    assert [k for k, _ in writes.take(0, 10)] == ["a", "b"]
    assert writes.wait_time(0) == pytest.approx(0.5)


def test_coalescer_one_write_per_device_at_a_time() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(rate=100, burst=100, refresh_rate=1, now=0)
    writes.changed("a")
    assert writes.take(0, 10) == [("a", WriteKind.CHANGE)]
    writes.changed("a")  # changed again while being written
    writes.changed("b")
    assert writes.take(0, 10) == [("b", WriteKind.CHANGE)]
    assert writes.pending == 1
    writes.finished("a")
    assert writes.take(0, 10) == [("a", WriteKind.CHANGE)]


def test_ordinary_changes_wait_for_their_burst_to_settle_urgent_ones_do_not() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(
        rate=100, burst=100, refresh_rate=1, now=0, change_settle=2.0, change_hold=10.0
    )
    writes.changed("v1", now=0.0)
    writes.changed("v2", now=1.0)  # the rollout goes on
    writes.changed("fail", urgent=True, now=1.0)
    assert writes.take(1.0, 10) == [("fail", WriteKind.URGENT)]
    assert writes.wait_time(1.0) == pytest.approx(2.0)  # two seconds after the last new one
    writes.changed("v1", now=2.5)  # already queued: not a new change, the wait stays
    assert writes.take(2.9, 10) == []
    assert writes.take(3.0, 10) == [("v1", WriteKind.CHANGE), ("v2", WriteKind.CHANGE)]


def test_a_change_that_never_settles_waits_at_most_the_hold() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(
        rate=100, burst=100, refresh_rate=1, now=0, change_settle=2.0, change_hold=10.0
    )
    taken: list[tuple[str, WriteKind]] = []
    for second in range(12):  # a new change every second: never quiet for two
        writes.changed(f"d{second}", now=float(second))
        taken += writes.take(float(second), 100)
    assert [key for key, _ in taken] == [f"d{i}" for i in range(11)]  # at 10 s, all queued
    assert writes.wait_time(11.0) == pytest.approx(2.0)  # d11: the settle again
    writes.refresh("r1")
    assert writes.take(11.0, 10) == [("r1", WriteKind.REFRESH)]  # refreshes are not held


def test_coalescer_bounds_the_write_rate() -> None:
    writes: WriteCoalescer[int] = WriteCoalescer(rate=10, burst=5, refresh_rate=2, now=0)
    for i in range(1000):
        writes.changed(i)
        writes.refresh(10_000 + i)
    total_changes = total_refreshes = 0
    for tick in range(1001):
        t = tick / 100
        for key, kind in writes.take(t, 100):
            writes.finished(key)
            if kind is WriteKind.CHANGE:
                total_changes += 1
            else:
                total_refreshes += 1
    assert total_changes == 5 + 100  # burst + 10/s for 10 s (changes first)
    assert total_refreshes == 0
    assert writes.wait_time(t) == pytest.approx(0.0, abs=0.11)


def test_coalescer_refreshes_alone_use_their_own_budget() -> None:
    writes: WriteCoalescer[int] = WriteCoalescer(rate=50, burst=50, refresh_rate=5, now=0)
    for i in range(1000):
        writes.refresh(i)
    done = 0
    for tick in range(401):
        t = tick / 20
        for key, _ in writes.take(t, 100):
            writes.finished(key)
            done += 1
    assert done == 1 + 5 * 20  # a burst of one, then 5 a second
    assert writes.wait_time(t) is not None
    empty: WriteCoalescer[int] = WriteCoalescer(rate=1, burst=1, refresh_rate=1, now=0)
    assert empty.wait_time(0) is None


def test_refresh_capacity_drops_are_counted() -> None:
    writes: WriteCoalescer[int] = WriteCoalescer(
        rate=1, burst=1, refresh_rate=1, now=0, refresh_capacity=2
    )
    for i in range(5):
        writes.refresh(i)
    assert writes.pending == 2
    assert writes.dropped_refreshes == 3


def test_refresh_due_after_several_periods() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert refresh_due(None, t0, 10)
    assert not refresh_due(t0, t0 + timedelta(seconds=59), 10)
    assert refresh_due(t0, t0 + timedelta(seconds=60), 10)


def test_event_limiter() -> None:
    limiter = EventLimiter(per_device_rate=1, per_device_burst=2, rate=100, burst=3, now=0)
    assert limiter.decide("a", "e1", 0) is EventDecision.RECORD
    assert limiter.decide("a", "e1", 0) is EventDecision.DUPLICATE
    assert limiter.decide("a", "e2", 0) is EventDecision.RECORD
    assert limiter.decide("a", "e3", 0) is EventDecision.LIMITED  # per device
    assert limiter.decide("b", "e1", 0) is EventDecision.RECORD
    assert limiter.decide("c", "e1", 0) is EventDecision.LIMITED  # whole fleet
    assert limiter.decide("a", "e4", 1.0) is EventDecision.RECORD


def test_event_limiter_forgets_old_ids() -> None:
    limiter = EventLimiter(
        per_device_rate=1000,
        per_device_burst=1000,
        rate=1000,
        burst=1000,
        now=0,
        remembered_ids=2,
    )
    for event in ("e1", "e2", "e3"):
        assert limiter.decide("a", event, 0) is EventDecision.RECORD
    assert limiter.decide("a", "e1", 0) is EventDecision.RECORD


def test_coalescer_caps_refreshes_per_take() -> None:
    writes: WriteCoalescer[str] = WriteCoalescer(rate=100, burst=100, refresh_rate=100, now=0)
    for key in ("r1", "r2", "r3"):
        writes.refresh(key)
    writes.changed("c1")
    taken = writes.take(0, limit=4, refresh_limit=1)
    assert taken == [("c1", WriteKind.CHANGE), ("r1", WriteKind.REFRESH)]
    assert writes.take(0, limit=4, refresh_limit=0) == []

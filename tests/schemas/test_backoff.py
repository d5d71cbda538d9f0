"""Retry delays (flotta.backoff): pure, no broker."""

from __future__ import annotations

import random
import statistics

import pytest

from flotta.backoff import Backoff, BackoffPolicy


def test_ceiling_doubles_from_base_up_to_cap() -> None:
    policy = BackoffPolicy(base=0.5, cap=10.0)
    assert [policy.ceiling(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.ceiling(10_000) == 10.0


def test_every_delay_is_full_jitter_within_the_ceiling() -> None:
    backoff = Backoff(BackoffPolicy(base=1.0, cap=8.0), random.Random(7))
    for attempt in range(12):
        ceiling = backoff.policy.ceiling(attempt)
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceiling
    assert backoff.attempt == 12


def test_a_fleet_reconnecting_at_once_is_spread_over_the_window() -> None:
    """10,000 devices that lost the broker together do not come back together."""
    rng = random.Random(1)
    policy = BackoffPolicy(base=1.0, cap=60.0)
    first = [Backoff(policy, rng).next_delay() for _ in range(10_000)]
    # Full jitter: uniform over [0, base]; no more than ~1.5% of the fleet in any 1/100 slice.
    buckets = [0] * 100
    for delay in first:
        buckets[min(int(delay * 100), 99)] += 1
    assert max(buckets) < 150
    assert 0.45 < statistics.fmean(first) < 0.55


def test_attempts_reset_only_after_a_stable_connection() -> None:
    backoff = Backoff(BackoffPolicy(base=1.0, cap=60.0, stable_after=30.0), random.Random(3))
    for _ in range(5):
        backoff.next_delay()
    backoff.on_connected(now=100.0)
    backoff.on_disconnected(now=101.0)  # flapping: accepted, then dropped at once
    assert backoff.attempt == 5
    backoff.on_connected(now=200.0)
    backoff.on_disconnected(now=260.0)
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 1.0


@pytest.mark.parametrize(
    ("base", "cap", "stable_after"), [(0.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 2.0, -1.0)]
)
def test_nonsense_policies_are_refused(base: float, cap: float, stable_after: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        BackoffPolicy(base=base, cap=cap, stable_after=stable_after)


def test_half_jitter_waits_at_least_half_the_ceiling_and_none_is_the_plain_sequence() -> None:
    half = Backoff(BackoffPolicy(base=1.0, cap=8.0, jitter=0.5), random.Random(5))
    for attempt in range(8):
        ceiling = half.policy.ceiling(attempt)
        assert ceiling / 2 <= half.next_delay() <= ceiling
    plain = Backoff(BackoffPolicy(base=0.2, cap=5.0, jitter=0.0))
    assert [round(delay, 6) for _, delay in zip(range(7), plain, strict=False)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        5.0,
        5.0,
    ]
    plain.reset()
    assert next(plain) == 0.2
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter=1.5)

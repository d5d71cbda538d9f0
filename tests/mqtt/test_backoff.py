import random

from flotta.mqtt.backoff import Backoff


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=10.0)
    ceilings = []
    for _ in range(8):
        ceilings.append(backoff.ceiling())
        backoff.next_delay()
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.ceiling() == 0.5


def test_full_jitter_spreads_a_fleet_over_the_whole_window() -> None:
    delays = []
    for seed in range(2000):
        backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(seed))
        for _ in range(6):
            delay = backoff.next_delay()
        delays.append(delay)
    assert all(0 <= d <= 32.0 for d in delays)
    buckets = [sum(1 for d in delays if k * 8 <= d < (k + 1) * 8) for k in range(4)]
    assert min(buckets) > 350  # roughly uniform: no thundering herd at one instant


def test_huge_attempt_counts_do_not_overflow() -> None:
    backoff = Backoff(base=1.0, cap=30.0, attempt=10_000)
    assert backoff.ceiling() == 30.0

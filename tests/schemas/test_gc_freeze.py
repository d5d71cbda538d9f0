"""The collector policy of the operator and the bridge: young garbage collected before each
freeze, frozen cycles reclaimed by the periodic full collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from flotta.gc_freeze import FreezePolicy, GcAction, apply, collect_young_less_often


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_policy_collects_fully_once_per_period() -> None:
    policy = FreezePolicy(full_every=60, last_full=0)
    assert policy.action(10) is GcAction.FREEZE
    assert policy.action(60) is GcAction.FULL
    assert policy.action(100) is GcAction.FREEZE
    assert policy.action(121) is GcAction.FULL


def test_freeze_collects_young_garbage_first_and_keeps_the_living_out_of_scans() -> None:
    garbage, dead = cycle()
    kept = Node()
    del garbage
    before = gc.get_freeze_count()
    apply(GcAction.FREEZE)
    assert dead() is None  # not frozen as a leak
    assert gc.get_freeze_count() > before
    assert not any(o is kept for o in gc.get_objects())  # frozen objects are not scanned


def test_full_collection_reclaims_a_cycle_that_was_frozen_alive() -> None:
    alive, ref = cycle()
    apply(GcAction.FREEZE)
    del alive  # it dies frozen: only a full collection over the unfrozen heap finds it
    gc.collect()
    assert ref() is not None
    apply(GcAction.FULL)
    assert ref() is None


def test_young_collections_come_less_often_and_still_reclaim_cycles() -> None:
    before = gc.get_threshold()
    try:
        collect_young_less_often(5_000)
        assert gc.get_threshold() == (5_000, *before[1:])
        gc.collect()
        collections = gc.get_stats()[0]["collections"]
        alive: list[list[object]] = [
            [] for _ in range(3_000)
        ]  # tracked containers, fewer than the threshold
        assert gc.get_stats()[0]["collections"] == collections
        garbage, reference = cycle()
        del garbage
        alive += [[] for _ in range(20_000)]
        assert gc.get_stats()[0]["collections"] > collections
        assert reference() is None  # a young collection that did run found the cycle
    finally:
        gc.set_threshold(*before)

"""Keep large, long-lived caches out of the cyclic garbage collector's way.

The operator and the bridge keep state per device (a model of every EdgeDevice, a record of
every status). Python's collector scans every tracked object of its oldest generation on each
full collection: with 10,000 EdgeDevices in the operator that was half a second with the event
loop standing still, at the start of a fan-out (py-spy, benchmarks/results/fleet.md).

``gc.freeze()`` moves what is alive into a permanent generation that collections skip; frozen
objects are still freed by reference counting, but a reference cycle that is frozen would never
be collected. So before each freeze the young generations are collected (new cyclic garbage goes
there first), and every ``full_every`` seconds everything is unfrozen and collected once.

:func:`collect_young_less_often` raises the young generation's threshold: CPython collects it
every 700 allocations, so a process that handles thousands of messages a second, each leaving
a burst of short-lived objects, ran the collector dozens of times a second.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import logging
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class GcAction(enum.Enum):
    FREEZE = "freeze"  # collect the young generations, freeze the survivors
    FULL = "full"  # unfreeze, collect everything, freeze again


@dataclass(slots=True)
class FreezePolicy:
    """When to freeze and when to collect fully. Pure: time is an argument."""

    full_every: float = 3600.0  # seconds between full collections
    last_full: float = 0.0

    def action(self, now: float) -> GcAction:
        if now - self.last_full >= self.full_every:
            self.last_full = now
            return GcAction.FULL
        return GcAction.FREEZE


YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)


def collect_young_less_often(threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect the young generation every ``threshold`` allocations (the older generations'
    thresholds stay, so they run as often relative to it)."""
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


def apply(action: GcAction) -> None:
    if action is GcAction.FULL:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


async def keep_frozen(interval: float = 10.0, full_every: float = 3600.0) -> None:
    """Run for the life of the process: every ``interval`` seconds freeze what survived."""
    policy = FreezePolicy(full_every=full_every, last_full=time.monotonic())
    while True:
        await asyncio.sleep(interval)
        action = policy.action(time.monotonic())
        started = time.perf_counter()
        apply(action)
        if action is GcAction.FULL:
            logger.info(
                "full garbage collection in %.3f s; %d objects frozen",
                time.perf_counter() - started,
                gc.get_freeze_count(),
            )

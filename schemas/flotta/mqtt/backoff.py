"""Reconnect delays: exponential with full jitter, so a fleet that lost the broker at the same
moment does not come back at the same moment."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 60.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def ceiling(self) -> float:
        """The largest delay the next attempt may wait."""
        return float(min(self.cap, self.base * (2 ** min(self.attempt, 30))))

    def next_delay(self) -> float:
        delay = self.rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

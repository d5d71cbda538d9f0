"""Reconnect delays: exponential backoff with full jitter (pure, no I/O, no clock).

Full jitter (``uniform(0, min(cap, base * 2**attempt))``) spreads a fleet that lost its
broker at the same moment over the whole window, so the broker's return is not met by a
reconnect storm. A connection only counts as healthy again after ``stable_after`` seconds;
a broker that accepts and then drops clients at once keeps the delays growing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base: float = 1.0  # seconds: upper bound of the first delay
    cap: float = 60.0  # seconds: no delay is ever longer
    stable_after: float = 30.0  # seconds connected after which the attempt count resets

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.stable_after < 0:
            raise ValueError(
                f"backoff needs 0 < base <= cap and stable_after >= 0, got {self.base}, "
                f"{self.cap}, {self.stable_after}"
            )

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before reconnect attempt ``attempt`` (0-based)."""
        # 2**attempt overflows floats eventually; the cap is reached long before.
        exponent = min(attempt, 62)
        return min(self.cap, self.base * float(2**exponent))


@dataclass(slots=True)
class Backoff:
    """Attempt counter plus jitter; the caller passes monotonic timestamps in."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    connected_at: float | None = None

    def next_delay(self) -> float:
        """The delay before the next attempt, and count the attempt."""
        delay = self.rng.uniform(0.0, self.policy.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def on_connected(self, now: float) -> None:
        self.connected_at = now

    def on_disconnected(self, now: float) -> None:
        """Reset the attempt count only if the connection that just ended was stable."""
        if self.connected_at is not None and now - self.connected_at >= self.policy.stable_after:
            self.attempt = 0
        self.connected_at = None

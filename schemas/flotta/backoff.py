"""Retry delays: capped exponential backoff with jitter (pure, no I/O, no clock). The one
backoff of the MQTT client, the agent's telemetry and the operator's and bridge's retry loops.

The ceiling doubles from ``base`` up to ``cap``; each delay is drawn from the top ``jitter``
share of it: ``uniform((1 - jitter) * ceiling, ceiling)``.

* ``jitter=1`` (full jitter, the default) spreads a fleet that lost its broker at the same
  moment over the whole window, so the broker's return is not met by a reconnect storm;
* ``jitter=0.5`` waits at least half the ceiling (the agent's telemetry retries);
* ``jitter=0`` is the plain doubling sequence (a single client retrying its API watch).

A connection only counts as healthy again after ``stable_after`` seconds; a broker that
accepts and then drops clients at once keeps the delays growing.

Standard library only: the device agent imports it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base: float = 1.0  # seconds: the first ceiling
    cap: float = 60.0  # seconds: no delay is ever longer
    stable_after: float = 30.0  # seconds connected after which the attempt count resets
    jitter: float = 1.0  # the share of the ceiling that is random (0: none, 1: full)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.stable_after < 0:
            raise ValueError(
                f"backoff needs 0 < base <= cap and stable_after >= 0, got {self.base}, "
                f"{self.cap}, {self.stable_after}"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"backoff needs 0 <= jitter <= 1, got {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before attempt ``attempt`` (0-based)."""
        # 2**attempt overflows floats eventually; the cap is reached long before.
        exponent = min(attempt, 62)
        return min(self.cap, self.base * float(2**exponent))

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = self.ceiling(attempt)
        if self.jitter == 0.0:
            return ceiling
        return rng.uniform((1.0 - self.jitter) * ceiling, ceiling)


@dataclass(slots=True)
class Backoff:
    """Attempt counter plus jitter; an endless iterator of delays. The caller passes
    monotonic timestamps in."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    connected_at: float | None = None

    def next_delay(self) -> float:
        """The delay before the next attempt, and count the attempt."""
        delay = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return delay

    def __iter__(self) -> Backoff:
        return self

    def __next__(self) -> float:
        return self.next_delay()

    def reset(self) -> None:
        """The attempt succeeded: the next delay is the first again."""
        self.attempt = 0

    def on_connected(self, now: float) -> None:
        self.connected_at = now

    def on_disconnected(self, now: float) -> None:
        """Reset the attempt count only if the connection that just ended was stable."""
        if self.connected_at is not None and now - self.connected_at >= self.policy.stable_after:
            self.attempt = 0
        self.connected_at = None

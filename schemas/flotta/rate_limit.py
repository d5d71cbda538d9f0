"""Token buckets: ``rate`` tokens a second, at most ``burst`` saved up. Pure: time is an
argument (monotonic seconds)."""

from __future__ import annotations

from collections import OrderedDict

EPSILON = 1e-9  # refills add up floats; a token that is 0.9999999 is a token


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def available(self, now: float, count: float = 1.0) -> bool:
        self._refill(now)
        return self._tokens + EPSILON >= count

    def try_take(self, now: float, count: float = 1.0) -> bool:
        self._refill(now)
        if self._tokens + EPSILON >= count:
            self._tokens = max(0.0, self._tokens - count)
            return True
        return False

    def wait_time(self, now: float, count: float = 1.0) -> float:
        """Seconds until ``count`` tokens are available (0 if they are now)."""
        self._refill(now)
        missing = count - self._tokens
        return 0.0 if missing <= EPSILON else missing / self.rate


class KeyedLimiter:
    """A token bucket per key (a device) under one for all keys: a key is served while both
    have a token. The most recently used ``remembered_keys`` buckets are kept (a key seen again
    after it was forgotten starts with a full bucket), so memory stays bounded."""

    def __init__(
        self,
        *,
        per_key_rate: float,
        per_key_burst: float,
        rate: float,
        burst: float,
        now: float,
        remembered_keys: int = 100_000,
    ) -> None:
        self.per_key_rate = per_key_rate
        self.per_key_burst = per_key_burst
        self.remembered_keys = remembered_keys
        self._all = TokenBucket(rate, burst, now)
        self._keys: OrderedDict[str, TokenBucket] = OrderedDict()

    def try_take(self, key: str, now: float) -> bool:
        bucket = self._keys.get(key)
        if bucket is None:
            bucket = TokenBucket(self.per_key_rate, self.per_key_burst, now)
            self._keys[key] = bucket
            if len(self._keys) > self.remembered_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        if not bucket.available(now) or not self._all.try_take(now):
            return False
        bucket.try_take(now)
        return True

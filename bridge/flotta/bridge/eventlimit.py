"""Which device events become Kubernetes Events: duplicates (same event id) are dropped, and
token buckets per device and for the whole fleet bound the rate. Pure."""

from __future__ import annotations

import enum
from collections import OrderedDict

from flotta.ratelimit import TokenBucket


class EventDecision(enum.Enum):
    RECORD = "record"
    DUPLICATE = "duplicate"
    LIMITED = "limited"


class EventLimiter:
    def __init__(
        self,
        *,
        per_device_rate: float,
        per_device_burst: float,
        rate: float,
        burst: float,
        now: float,
        remembered_ids: int = 10_000,
        remembered_devices: int = 100_000,
    ) -> None:
        self.per_device_rate = per_device_rate
        self.per_device_burst = per_device_burst
        self._fleet = TokenBucket(rate, burst, now)
        self._devices: OrderedDict[str, TokenBucket] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.remembered_ids = remembered_ids
        self.remembered_devices = remembered_devices

    def decide(self, device: str, event_id: str, now: float) -> EventDecision:
        key = (device, event_id)
        if key in self._seen:
            return EventDecision.DUPLICATE
        self._seen[key] = None
        if len(self._seen) > self.remembered_ids:
            self._seen.popitem(last=False)
        bucket = self._devices.get(device)
        if bucket is None:
            bucket = TokenBucket(self.per_device_rate, self.per_device_burst, now)
            self._devices[device] = bucket
            if len(self._devices) > self.remembered_devices:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device)
        if not bucket.available(now) or not self._fleet.try_take(now):
            return EventDecision.LIMITED
        bucket.try_take(now)
        return EventDecision.RECORD

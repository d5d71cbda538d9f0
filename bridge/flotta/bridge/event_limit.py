"""Which device events become Kubernetes Events: duplicates (same event id) are dropped, and
token buckets per device and for the whole fleet bound the rate. Pure."""

from __future__ import annotations

import enum
from collections import OrderedDict

from flotta.rate_limit import KeyedLimiter


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
        self._limits = KeyedLimiter(
            per_key_rate=per_device_rate,
            per_key_burst=per_device_burst,
            rate=rate,
            burst=burst,
            now=now,
            remembered_keys=remembered_devices,
        )
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.remembered_ids = remembered_ids

    def decide(self, device: str, event_id: str, now: float) -> EventDecision:
        key = (device, event_id)
        if key in self._seen:
            return EventDecision.DUPLICATE
        self._seen[key] = None
        if len(self._seen) > self.remembered_ids:
            self._seen.popitem(last=False)
        if not self._limits.try_take(device, now):
            return EventDecision.LIMITED
        return EventDecision.RECORD

"""The receiving end of ``publish`` for service tests: de-duplicates batches by
(topic, stream, sequence) the way the bridge does, and can be offline or lose acks."""

from __future__ import annotations

from dataclasses import dataclass, field

from flotta.schemas.codec import decode
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch


@dataclass
class Receiver:
    online: bool = False
    lose_every_nth_ack: int = 0
    attempts: int = 0
    duplicates: int = 0
    batches: dict[tuple[str, str, int], bytes] = field(default_factory=dict)

    async def publish(self, topic: str, payload: bytes) -> None:
        self.attempts += 1
        if not self.online:
            raise ConnectionError("broker unreachable")
        kind = topic.rsplit("/", 1)[1]
        batch: MetricsBatch | LogsBatch = (
            decode(MetricsBatch, payload) if kind == "metrics" else decode(LogsBatch, payload)
        )
        key = (kind, batch.stream, batch.sequence)
        if key in self.batches:
            assert self.batches[key] == payload, "a resent batch must be byte-identical"
            self.duplicates += 1
        self.batches[key] = payload
        if self.lose_every_nth_ack and self.attempts % self.lose_every_nth_ack == 0:
            raise TimeoutError("PUBACK lost")

    def metrics(self) -> list[MetricsBatch]:
        return [
            decode(MetricsBatch, p)
            for (k, _, _), p in sorted(self.batches.items())
            if k == "metrics"
        ]

    def logs(self) -> list[LogsBatch]:
        return [
            decode(LogsBatch, p) for (k, _, _), p in sorted(self.batches.items()) if k == "logs"
        ]

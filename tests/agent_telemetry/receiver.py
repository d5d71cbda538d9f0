"""The receiving end of ``publish`` for service tests: de-duplicates batches by
(topic, stream, sequence) and confirms each stored batch with a receipt, the way the bridge
does, and can be offline or lose acks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flotta.schemas.codec import decode, encode
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch, TelemetryReceipt


@dataclass
class Receiver:
    online: bool = False
    lose_every_nth_ack: int = 0
    vanish_first: int = 0  # acknowledge but lose this many publishes (a broker losing them)
    attempts: int = 0
    duplicates: int = 0
    batches: dict[tuple[str, str, int], bytes] = field(default_factory=dict)
    confirm: Callable[[bytes], object] | None = None  # where receipts go (the device's service)
    receipts: int = 0

    async def publish(self, topic: str, payload: bytes) -> None:
        self.attempts += 1
        if not self.online:
            raise ConnectionError("broker unreachable")
        if self.vanish_first > 0:
            self.vanish_first -= 1
            return
        kind = topic.rsplit("/", 1)[1]
        batch: MetricsBatch | LogsBatch = (
            decode(MetricsBatch, payload) if kind == "metrics" else decode(LogsBatch, payload)
        )
        key = (kind, batch.stream, batch.sequence)
        if key in self.batches:
            assert self.batches[key] == payload, "a resent batch must be byte-identical"
            self.duplicates += 1
        self.batches[key] = payload
        if self.confirm is not None:
            receipt = TelemetryReceipt(
                kind="metrics" if kind == "metrics" else "logs",
                stream=batch.stream,
                sequences=[batch.sequence],
            )
            self.confirm(encode(receipt))
            self.receipts += 1
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

"""What a sink is given and what it answers: the one interface every telemetry sink implements.

The exporter acknowledges a JetStream message only after the sink answered ``Accepted`` for
the batch it carried; ``Retry`` leaves it unacknowledged (the sink is down or overloaded: the
consumer's lag grows, nothing is lost), ``Refused`` sends it to the dead-letter subject with
the reason (it can never be delivered: retrying would block the device's stream for ever).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

BatchT = TypeVar("BatchT", MetricsBatch, LogsBatch)


@dataclass(frozen=True, slots=True)
class DeviceBatch(Generic[BatchT]):
    """One device's batch as JetStream holds it."""

    namespace: str
    device: str
    stream_sequence: int
    """The JetStream stream sequence of the message that carried it."""
    batch: BatchT

    @property
    def message_id(self) -> str:
        """``{device}:{kind}:{stream}:{sequence}``: the same batch sent twice has the same id."""
        return self.batch.message_id(self.device)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The sink holds the batches (or already held them)."""

    items: int
    """Samples or lines the sink took."""
    too_old: int = 0
    """Items the sink refused as outside its accepted time range (counted, not retried)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The sink could not take them now (unreachable, 5xx, 429): try again later."""

    reason: str
    after_seconds: float | None = None
    """How long the sink asked us to wait, when it said."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The sink will never take them as they are (invalid): dead-letter them with the reason."""

    reason: str


SinkOutcome = Accepted | Retry | Refused


class Sink(Protocol[BatchT]):
    """A destination for one kind of telemetry batch."""

    @property
    def name(self) -> str:
        """Names the sink in metrics, logs and dead letters (``prometheus``, ``loki``, ...)."""
        ...

    async def send(self, batches: Sequence[DeviceBatch[BatchT]]) -> SinkOutcome:
        """Deliver the batches in order, all or none; never raises for a sink's answer."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class Closable(Protocol):
    async def aclose(self) -> None: ...


TargetT = TypeVar("TargetT", bound=Hashable)
SinkT = TypeVar("SinkT", bound=Closable)


class SinksByTarget(Generic[TargetT, SinkT]):
    """One sink per destination (a remote-write receiver, a syslog server), made when first
    asked for and closed all together."""

    def __init__(self, make: Callable[[TargetT], SinkT]) -> None:
        self._make = make
        self._sinks: dict[TargetT, SinkT] = {}

    def get(self, target: TargetT) -> SinkT:
        sink = self._sinks.get(target)
        if sink is None:
            sink = self._sinks[target] = self._make(target)
        return sink

    async def aclose(self) -> None:
        sinks = list(self._sinks.values())
        self._sinks.clear()
        for sink in sinks:
            await sink.aclose()

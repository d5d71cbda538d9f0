"""What the operator's loops share: caches, queues, the broker, the API writer, the PKI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flotta.operator.defaults import DEFAULT_DEVICE_WRITE_RATE, DEFAULT_DEVICE_WRITE_SETTLE
from flotta.operator.desired import DesiredStates
from flotta.operator.errors import TransportError
from flotta.operator.fleet_cache import Fleet, Key
from flotta.operator.keyring import KeyRing
from flotta.operator.ledger import Ledger
from flotta.operator.metrics import OperatorMetrics
from flotta.operator.patching import KubeWriter
from flotta.operator.policy import ApprovalPolicy
from flotta.operator.rollouts import Rollouts
from flotta.operator.work_queue import WorkQueue
from flotta.pki.store import PkiStore


class Publisher(Protocol):
    connected: asyncio.Event

    def publish_callback(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        done: Callable[[TransportError | None], None],
    ) -> None: ...

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]: ...


class ReportEar(Protocol):
    """The devices' status reports, heard while rollouts are under way
    (:class:`flotta.operator.report_watch.ReportWatch`)."""

    def want(self) -> None: ...

    async def ready(self, within: float) -> bool: ...


class _Deaf:
    def want(self) -> None:
        pass

    async def ready(self, within: float) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    enrolment_namespace: str = "flotta"
    policy: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    sealing_key: bytes = b""
    # Publishes awaiting PUBACK: with TCP_NODELAY a round trip is well under a millisecond, and
    # 256 keep the broker busy (operator.md: 10,000 states in 0.8-0.9 s, 1.3-1.4 s with 2000).
    max_in_flight: int = 256
    status_interval: float = 1.0
    writers: int = 4
    # EdgeDevice writes a second (and at most this many at once): a change to a whole fleet
    # reaches the API over N/rate seconds and leaves the CPU to the fan-out itself.
    device_write_rate: float = DEFAULT_DEVICE_WRITE_RATE
    device_write_settle: float = DEFAULT_DEVICE_WRITE_SETTLE

    def __post_init__(self) -> None:
        if self.device_write_rate <= 0:
            raise ValueError(f"device_write_rate must be > 0, got {self.device_write_rate}")
        if self.device_write_settle < 0:
            raise ValueError(f"device_write_settle must be >= 0, got {self.device_write_settle}")


@dataclass
class Context:
    settings: OperatorSettings
    fleet: Fleet
    desired: DesiredStates
    ledger: Ledger
    keyring: KeyRing
    pki: PkiStore
    broker: Publisher  # the fleet broker
    enrolment: Publisher  # the enrolment broker
    kube: KubeWriter
    metrics: OperatorMetrics
    reload_crl: Callable[[], None]
    rollouts: Rollouts = field(default_factory=lambda: Rollouts(Fleet()))
    # Disconnect a revoked device and discard its broker session (flotta.operator.evicting).
    evict: Callable[[str], None] = lambda _device_id: None
    reconcile: WorkQueue[Key] = field(default_factory=WorkQueue)
    publish: WorkQueue[Key] = field(default_factory=WorkQueue)
    device_writes: WorkQueue[Key] = field(default_factory=WorkQueue)
    workload_status: WorkQueue[Key] = field(default_factory=WorkQueue)
    set_status: WorkQueue[Key] = field(default_factory=WorkQueue)
    cleanup: WorkQueue[Key] = field(default_factory=WorkQueue)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    reports: ReportEar = field(default_factory=_Deaf)
    # Set when a spec changed or a report may move a rollout: it is evaluated at once.
    reports_changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Workloads with a rollout policy that changed: a new revision is evaluated at once.
    rollout_kicks: set[Key] = field(default_factory=set)

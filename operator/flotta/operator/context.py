"""What the operator's loops share: caches, queues, the broker, the API writer, the PKI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flotta.operator.desired import DesiredStates
from flotta.operator.errors import TransportError
from flotta.operator.fleet import Fleet, Key
from flotta.operator.keyring import KeyRing
from flotta.operator.ledger import Ledger
from flotta.operator.metrics import OperatorMetrics
from flotta.operator.patching import KubeWriter
from flotta.operator.policy import ApprovalPolicy
from flotta.operator.workqueue import WorkQueue
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


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    enrolment_namespace: str = "flotta"
    policy: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    sealing_key: bytes = b""
    max_in_flight: int = 2000
    status_interval: float = 1.0
    writers: int = 4


@dataclass
class Context:
    settings: OperatorSettings
    fleet: Fleet
    desired: DesiredStates
    ledger: Ledger
    keyring: KeyRing
    pki: PkiStore
    broker: Publisher
    kube: KubeWriter
    metrics: OperatorMetrics
    reload_crl: Callable[[], None]
    reconcile: WorkQueue[Key] = field(default_factory=WorkQueue)
    publish: WorkQueue[Key] = field(default_factory=WorkQueue)
    device_writes: WorkQueue[Key] = field(default_factory=WorkQueue)
    workload_status: WorkQueue[Key] = field(default_factory=WorkQueue)
    set_status: WorkQueue[Key] = field(default_factory=WorkQueue)
    cleanup: WorkQueue[Key] = field(default_factory=WorkQueue)
    synced: asyncio.Event = field(default_factory=asyncio.Event)

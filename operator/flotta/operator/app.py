"""The operator process: leader election, watches, the broker session and the loops.

Every loop runs as a named task in a :class:`flotta.tasks.TaskSet`: a loop that fails or
returns is logged and stops the operator (a supervisor, e.g. the Deployment, restarts it);
``stop`` cancels and awaits every task.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubernetes import client, config

from flotta import gc_freeze
from flotta.health import HealthServer
from flotta.operator.bridge_watch import CHECK_EVERY, UNKNOWN_AFTER, BridgeWatch
from flotta.operator.broker import Broker, BrokerSettings, Message
from flotta.operator.cleanup import Cleaner
from flotta.operator.context import Context, OperatorSettings
from flotta.operator.desired import DesiredStates
from flotta.operator.enrolling import Enroller
from flotta.operator.errors import TransportError
from flotta.operator.evicting import Evictor
from flotta.operator.fleet_cache import Fleet
from flotta.operator.keyring import KeyRing
from flotta.operator.leader import LeaderElection
from flotta.operator.ledger import Ledger
from flotta.operator.metrics import OperatorMetrics
from flotta.operator.patching import KubeWriter
from flotta.operator.reconciling import Reconciler
from flotta.operator.report_watch import LINGER, ReportWatch
from flotta.operator.rollouts import Rollouts
from flotta.operator.sealer import Sealer
from flotta.operator.statuses import ROLLOUT_TICK, StatusWriter, load_revisions
from flotta.operator.version_reports import VersionReports
from flotta.operator.watch_intake import Intake
from flotta.operator.watching import Watcher, WatchEvent, core_kind, flotta_kind
from flotta.pki.errors import PkiError
from flotta.pki.store import PkiStore
from flotta.rate_limit import TokenBucket
from flotta.schemas.codec import decode
from flotta.schemas.errors import ContractError
from flotta.schemas.topics import (
    DeviceTopic,
    EnrolTopic,
    device_filter,
    parse_device_topic,
    parse_enrol_topic,
)
from flotta.schemas.wire.connection import ConnectionState
from flotta.tasks import TaskSet

logger = logging.getLogger(__name__)

WATCH_QUEUE = 1000
SEALING_KEY_FILE = "operator-sealing.key"


@dataclass(frozen=True)
class OperatorConfig:
    broker: BrokerSettings  # the fleet broker's services listener
    enrolment: BrokerSettings  # the enrolment broker (see broker.enrolment_broker)
    pki_dir: Path
    kubeconfig: Path | None = None  # None: in-cluster configuration
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    lease_namespace: str = "flotta"
    lease_name: str = "flotta-operator"
    identity: str = ""
    leader_election: bool = True
    reload_crl: Callable[[], None] = lambda: None
    # Online devices become Unknown after this long without a live bridge (bridge_watch).
    bridge_unknown_after: float = UNKNOWN_AFTER
    # Rollouts read the devices' status reports while under way, and this long after
    # (report_watch; at least three rollout ticks); False: only from the EdgeDevice statuses.
    read_reports: bool = True
    report_linger: float = LINGER


def api_client(kubeconfig: Path | None) -> client.ApiClient:
    if kubeconfig is None:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 16
    return client.ApiClient(configuration)


def sealing_key(pki: PkiStore) -> bytes:
    """The operator's sealing secret, kept next to the CA (created once)."""
    path = pki.root / SEALING_KEY_FILE
    if not path.exists():
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


class Operator:
    def __init__(self, cfg: OperatorConfig) -> None:
        self.cfg = cfg
        self.metrics = OperatorMetrics()
        self._tasks = TaskSet("operator", self._task_failed, until_stopped=True)
        self._failed: asyncio.Future[None] | None = None
        self._watchers: list[Watcher] = []
        self._broker: Broker | None = None
        self._enrolment: Broker | None = None
        self._health: HealthServer | None = None
        self._api: client.ApiClient | None = None
        self.leader: LeaderElection | None = None
        self.context: Context | None = None
        # Logs of refused or failed messages: a device flooding them must not flood the log.
        self._log_budget = TokenBucket(rate=1, burst=10, now=time.monotonic())

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._failed = loop.create_future()
        cfg = self.cfg
        self._api = api = await asyncio.to_thread(api_client, cfg.kubeconfig)
        if cfg.health_port is not None:
            self._health = HealthServer(
                host=cfg.health_host,
                port=cfg.health_port,
                registry=self.metrics.registry,
                readiness=self._readiness,
            )
            await self._health.start()
        if cfg.leader_election:
            self.leader = LeaderElection(
                api,
                namespace=cfg.lease_namespace,
                name=cfg.lease_name,
                identity=cfg.identity or f"operator-{secrets.token_hex(4)}",
            )
            await self.leader.acquire()
            self._tasks.start("lease", self.leader.keep())
        pki = PkiStore.open(cfg.pki_dir)
        fleet = Fleet()
        keyring = KeyRing(pki)
        settings = cfg.settings
        if not settings.sealing_key:
            settings = replace(settings, sealing_key=sealing_key(pki))
        ledger = Ledger()
        reports = VersionReports(known=lambda device_id: bool(fleet.namespaces_of(device_id)))
        rollouts = Rollouts(fleet, told=ledger.told, heard=reports.get)
        desired = DesiredStates(
            fleet,
            seal=Sealer(settings.sealing_key),
            public_key=keyring.for_device,
            rollouts=rollouts,
        )
        reconciler_ref: list[Reconciler] = []
        self._broker = broker = Broker(
            cfg.broker,
            subscriptions=[
                device_filter(DeviceTopic.CONNECTION),
                device_filter(DeviceTopic.CSR),
            ],
            on_connected=lambda present: reconciler_ref[0].after_connect(present),
        )
        self._enrolment = enrolment = Broker(
            cfg.enrolment,
            subscriptions=[
                f"flotta/enrol/+/{EnrolTopic.REQUEST.value}",
                f"flotta/enrol/+/{EnrolTopic.ANSWER.value}",
            ],
            on_connected=lambda _present: None,
        )
        evictor = Evictor(
            cfg.broker.mqtt(),
            enrolled=lambda device_id: bool(fleet.namespaces_of(device_id)),
            on_evicted=lambda _device_id: self.metrics.evictions.inc(),
        )
        context = Context(
            settings=settings,
            fleet=fleet,
            desired=desired,
            ledger=ledger,
            keyring=keyring,
            pki=pki,
            broker=broker,
            enrolment=enrolment,
            kube=KubeWriter(api),
            metrics=self.metrics,
            reload_crl=cfg.reload_crl,
            evict=evictor.evict,
            rollouts=rollouts,
        )

        def heard_from(device_id: str) -> None:
            if rollouts.heard_from(device_id):
                context.reports_changed.set()

        watch = ReportWatch(
            cfg.broker,
            reports,
            on_change=heard_from,
            on_result=lambda result: self.metrics.status_reports.labels(result).inc(),
            # longer than a few rollout ticks: a rollout under way keeps wanting the reports
            linger=max(cfg.report_linger, 3 * ROLLOUT_TICK),
        )
        if cfg.read_reports:
            context.reports = watch
        self.context = context
        # Before any device is reconciled: the revisions devices outside a rollout keep.
        await load_revisions(context)
        reconciler = Reconciler(context)
        reconciler_ref.append(reconciler)
        self.metrics.queue_depth("reconcile_queue", lambda: len(context.reconcile))
        self.metrics.queue_depth("publish_queue", lambda: len(context.publish))
        self.metrics.queue_depth("device_write_queue", lambda: len(context.device_writes))
        enroller = Enroller(context)
        intake = Intake(context)
        events: asyncio.Queue[WatchEvent] = asyncio.Queue(WATCH_QUEUE)
        for watched in (
            flotta_kind(api, "EdgeDevice", "edgedevices"),
            flotta_kind(api, "EdgeDeviceSet", "edgedevicesets"),
            flotta_kind(api, "EdgeWorkload", "edgeworkloads"),
            flotta_kind(api, "EdgeDeviceSignedRequest", "edgedevicesignedrequests"),
            core_kind(api, "Secret"),
            core_kind(api, "ConfigMap"),
        ):
            watcher = Watcher(watched, events, loop)
            self._watchers.append(watcher)
            watcher.start()
        await broker.start()
        await enrolment.start()
        self._tasks.start("watch-events", self._dispatch_events(events, intake, enroller))
        self._tasks.start("mqtt-messages", self._dispatch_messages(broker, enroller, reconciler))
        self._tasks.start(
            "enrolment-messages", self._dispatch_messages(enrolment, enroller, reconciler)
        )
        self._tasks.start("reconcile", reconciler.run_reconcile())
        self._tasks.start("publish", reconciler.run_publish())
        self._tasks.start("device-writes", reconciler.run_device_writes())
        statuses = StatusWriter(context)
        self._tasks.start("workload-status", statuses.run_workloads())
        self._tasks.start("set-status", statuses.run_sets())
        self._tasks.start("rollouts", statuses.run_rollouts())
        if cfg.read_reports:
            self._tasks.start("status-reports", watch.run())
        self._tasks.start("cleanup", Cleaner(context).run())
        self._tasks.start("evictions", evictor.run())
        self._tasks.start(
            "bridge-presence",
            BridgeWatch(
                context,
                api,
                namespace=cfg.lease_namespace,
                unknown_after=cfg.bridge_unknown_after,
                check_every=min(CHECK_EVERY, cfg.bridge_unknown_after / 2),
            ).run(),
        )
        self._tasks.start("gc-freeze", gc_freeze.keep_frozen())

    async def wait(self) -> None:
        """Until a loop fails (raises its error)."""
        assert self._failed is not None
        await self._failed

    async def stop(self) -> None:
        await self._tasks.stop_all()
        for watcher in self._watchers:
            watcher.request_stop()
        if self._api is not None:
            # Closing the pooled connections ends the watch threads' blocking reads.
            self._api.rest_client.pool_manager.clear()
        await asyncio.gather(*(asyncio.to_thread(w.join) for w in self._watchers))
        self._watchers.clear()
        if self._broker is not None:
            await self._broker.stop()
        if self._enrolment is not None:
            await self._enrolment.stop()
        if self.leader is not None and self.leader.leading.is_set():
            await asyncio.to_thread(self.leader.release)
        if self._health is not None:
            await self._health.close()
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]

    def _task_failed(self, _name: str, error: BaseException) -> None:
        """The first loop that fails or returns ends :meth:`wait` with its error."""
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(error)

    def _readiness(self) -> tuple[bool, str]:
        if self.leader is not None and not self.leader.leading.is_set():
            return False, "standby (not holding the lease)"
        if self.context is None or not self.context.synced.is_set():
            return False, "caches not synced"
        if self._broker is None or not self._broker.connected.is_set():
            return False, "broker not connected"
        if self._enrolment is None or not self._enrolment.connected.is_set():
            return False, "enrolment broker not connected"
        return True, "ready"

    # ---- dispatch ------------------------------------------------------------------------

    async def _dispatch_events(
        self, events: asyncio.Queue[WatchEvent], intake: Intake, enroller: Enroller
    ) -> None:
        while True:
            event = await events.get()
            if event.kind != "EdgeDeviceSignedRequest":
                intake.handle(event)
                continue
            try:
                if event.type == "RELISTED":
                    for obj in event.objects:
                        await enroller.on_request_object("ADDED", obj)
                else:
                    await enroller.on_request_object(event.type, event.obj)
            except (TransportError, PkiError) as exc:
                # Level-triggered: the next event or relist of the request tries again.
                self.metrics.errors.labels("enrolment").inc()
                logger.warning("enrolment request not processed: %s", exc)
            except Exception:  # one bad object must never stop the operator for the fleet
                self.metrics.errors.labels("unexpected").inc()
                if self._log_budget.try_take(time.monotonic()):
                    logger.exception("watch event of %s not processed", event.kind)

    async def _dispatch_messages(
        self, broker: Broker, enroller: Enroller, reconciler: Reconciler
    ) -> None:
        context = self.context
        assert context is not None
        await context.synced.wait()
        while True:
            message: Message = await broker.messages.get()
            try:
                await self._handle_message(message, enroller)
            except ContractError as exc:
                self.metrics.errors.labels("invalid-payload").inc()
                if self._log_budget.try_take(time.monotonic()):
                    logger.info("message on %r ignored: %s", message.topic[:200], exc)
            except (TransportError, PkiError) as exc:
                # The device repeats its request (enrolment, renewal) until it is answered.
                self.metrics.errors.labels("device-message").inc()
                logger.warning("message on %s not processed: %s", message.topic, exc)
            except Exception:  # one device's message must never stop the operator for all
                self.metrics.errors.labels("unexpected").inc()
                if self._log_budget.try_take(time.monotonic()):
                    logger.exception("message on %r not processed", message.topic[:200])

    async def _handle_message(self, message: Message, enroller: Enroller) -> None:
        context = self.context
        assert context is not None
        if message.topic.startswith("flotta/enrol/"):
            parsed = parse_enrol_topic(message.topic)
            if parsed.kind is EnrolTopic.REQUEST:
                if message.payload:
                    await enroller.on_request(parsed.device_id, message.payload)
            else:
                await enroller.on_answer_seen(parsed.device_id, message.payload)
            return
        topic = parse_device_topic(message.topic)
        if topic.kind is DeviceTopic.CSR:
            await enroller.on_renewal(topic.device_id, message.payload)
            return
        if topic.kind is not DeviceTopic.CONNECTION or not message.payload:
            return
        state = decode(ConnectionState, message.payload)
        if state.state != "online":
            return
        await enroller.on_online(topic.device_id)
        for namespace in context.fleet.namespaces_of(topic.device_id):
            key = (namespace, topic.device_id)
            if context.ledger.announced(key, state.applied_version):
                context.publish.add(key)

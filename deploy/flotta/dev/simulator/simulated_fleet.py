"""Run simulated devices over real TLS MQTT connections, each with its own key and certificate.

A device without a certificate enrols first with the bootstrap certificate (client id = its
device id), exactly as the agent does; a device provisioned beforehand (``provision.py``) skips
that. Keys, certificates and the applied state are kept in the state dir, so a restarted
simulator resumes the same fleet. A device can be taken offline (its connection dropped, so the
broker publishes its will) and brought back, one by one or by random churn.

A version a device will fail (``device.py``) runs until its failure is due on a timer of the
event loop (``call_later``, not a task), which then rolls the device back; the device keeps
when it received that version and when the broker acknowledged its rolled-back report, for the
benchmarks' report.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flotta.dev.simulator import device_state
from flotta.dev.simulator.device import FaultRule, Outgoing, SimulatedDevice
from flotta.dev.simulator.faults import FAULTS_NAME, load_faults
from flotta.dev.simulator.provision import CERT_NAME, KEY_NAME
from flotta.dev.simulator.report import DeviceView, keep_reporting
from flotta.mqtt import MqttClient, MqttError, MqttSettings, TlsFiles, Will
from flotta.pki.files import KEY_MODE, write_atomic
from flotta.pki.keys import build_csr, csr_to_pem, generate_key, private_key_to_pem
from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import (
    ENROLMENT_PORT,
    DeviceTopic,
    EnrolTopic,
    device_topic,
    enrol_topic,
)
from flotta.schemas.wire import EnrolmentAnswer, EnrolmentRequest, Hardware
from flotta.schemas.wire.hardware import Cpu, SystemVendor
from flotta.tasks import wait_first

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetSettings:
    host: str
    port: int
    ca: Path
    bootstrap_cert: Path | None
    bootstrap_key: Path | None
    state_dir: Path
    namespace: str = "default"
    device_set: str = ""
    prefix: str = "sim"
    metrics_interval: float = 30.0  # seconds; 0 or less: no telemetry
    heartbeat_seconds: float = 60.0  # until a desired state says otherwise
    connect_spread: float = 5.0  # devices start over this many seconds, not all at once
    keepalive: int = 60
    # paho's keepalive check: a quarter of the keepalive sends a due PINGREQ within 1.25
    # keepalives, before the broker's limit of 1.5. Each check is a timer and a task step per
    # device: at 5 s they were 6 % of the simulator's CPU at 10,000 devices.
    misc_interval: float = 15.0
    # Connections opened at once by one simulator process (TCP connect and TLS handshake): the
    # rest wait their turn rather than overflow the broker's listen queue.
    concurrent_connects: int = 16
    # Thousands of attempts queue for those slots; a short timeout would abandon queued
    # attempts and retry them, a storm feeding itself.
    connect_timeout: float = 60.0
    reconnect_base: float = 1.0
    reconnect_cap: float = 30.0
    report_path: Path | None = None  # a JSON summary for benchmarks (``report.py``)
    enrolment_port: int = ENROLMENT_PORT  # the enrolment broker, on the same host
    faults: tuple[FaultRule, ...] = ()  # until STATE_DIR/faults.json says otherwise


class EnrolmentDeclinedError(Exception):
    """The operator declined or refused this device."""


class NotProvisionedError(Exception):
    """The device has no certificate and the simulator has no bootstrap identity to enrol."""


class SimulatedFleetDevice:
    def __init__(
        self,
        device_id: str,
        settings: FleetSettings,
        connect_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.device = SimulatedDevice(
            device_id, heartbeat_seconds=settings.heartbeat_seconds, faults=settings.faults
        )
        self.settings = settings
        self.connect_slots = connect_slots
        self.directory = settings.state_dir / device_id
        self.client: MqttClient | None = None
        self.online = False
        self.online_since: float | None = None  # wall clock: its birth was acknowledged
        self.reported_version = ""  # the last applied version the broker acknowledged
        self.reported_at = 0.0  # wall clock: when it did
        # wall clock: when the device received the latest version it failed, and when the broker
        # acknowledged the report that it rolled back from it (0: not yet)
        self.rollback: tuple[float, float] | None = None
        self._rollback_version = ""  # the version ``rollback`` is about
        self._failing: asyncio.TimerHandle | None = None  # the failure of the version applying
        self.resumed = device_state.load(self.device, self.directory)
        self._wanted_online = asyncio.Event()
        self._wanted_online.set()
        self._wanted_offline = asyncio.Event()
        self._subscribed = False  # in the broker's session for this device

    @property
    def device_id(self) -> str:
        return self.device.device_id

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_NAME

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_NAME

    def view(self) -> DeviceView:
        return DeviceView(
            self.online_since if self.online else None, self.reported_at, self.rollback
        )

    def _reported(self, version: str) -> None:
        """The broker acknowledged a status or birth that reports ``version``."""
        if version != self.reported_version:
            self.reported_version = version
            self.reported_at = time.time()

    def go_offline(self) -> None:
        """Drop the connection as a device losing its link does (the broker sends the will)."""
        self._wanted_online.clear()
        self._wanted_offline.set()

    def come_back(self) -> None:
        self._wanted_offline.clear()
        self._wanted_online.set()

    def _mqtt(
        self, cert: Path, key: Path, *, will: Will | None, clean: bool, port: int | None = None
    ) -> MqttSettings:
        return MqttSettings(
            host=self.settings.host,
            port=self.settings.port if port is None else port,
            client_id=self.device_id,
            tls=TlsFiles(self.settings.ca, cert, key, check_hostname=False),
            keepalive=self.settings.keepalive,
            misc_interval=min(self.settings.misc_interval, self.settings.keepalive / 4),
            connect_timeout=self.settings.connect_timeout,
            clean_start=clean,
            session_expiry=0 if clean else 7 * 24 * 3600,
            will=will,
            receive_maximum=20,
            incoming_queue=64,
            max_inflight=20,
            reconnect_base=self.settings.reconnect_base,
            reconnect_cap=self.settings.reconnect_cap,
        )

    async def enrol(self) -> None:
        """Get a certificate through the bootstrap identity, unless the device has one."""
        if self.cert_path.exists() and self.key_path.exists():
            return
        if self.settings.bootstrap_cert is None or self.settings.bootstrap_key is None:
            raise NotProvisionedError(
                f"{self.device_id}: no certificate in {self.directory} and no bootstrap identity"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        write_atomic(self.key_path, private_key_to_pem(key), mode=KEY_MODE)
        device_id = self.device_id
        request = EnrolmentRequest(
            target_namespace=self.settings.namespace,
            target_set=self.settings.device_set,
            model_name="flotta-simulator",
            hardware=Hardware(
                hostname=device_id,
                cpu=Cpu(architecture="x86_64", model_name="simulated", count=1),
                system_vendor=SystemVendor(
                    manufacturer="Flotta", product_name="Simulator", virtual=True
                ),
            ),
            csr=csr_to_pem(build_csr(key, device_id)).decode(),
        )
        client = MqttClient(
            self._mqtt(
                self.settings.bootstrap_cert,
                self.settings.bootstrap_key,
                will=None,
                clean=True,
                port=self.settings.enrolment_port,
            ),
            connect_slots=self.connect_slots,
        )
        try:
            await client.connect()
            await client.subscribe([(enrol_topic(device_id, EnrolTopic.ANSWER), 1)])
            await client.publish(enrol_topic(device_id, EnrolTopic.REQUEST), encode(request))
            async for message in client.messages():
                try:
                    answer = decode(EnrolmentAnswer, message.payload)
                except PayloadError as exc:
                    logger.warning("%s: bad enrolment answer: %s", device_id, exc)
                    continue
                if answer.status == "issued":
                    write_atomic(self.cert_path, answer.certificate.encode())
                    return
                if answer.status in ("declined", "refused"):
                    raise EnrolmentDeclinedError(
                        f"{device_id}: enrolment {answer.status}: {answer.message}"
                    )
        finally:
            await client.close()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, self.settings.connect_spread))  # noqa: S311
        while not stop.is_set():
            try:
                await self.enrol()
                break
            except MqttError as exc:
                logger.warning("%s: enrolment failed (%s); retrying", self.device_id, exc)
                await asyncio.sleep(random.uniform(2, 10))  # noqa: S311
        tasks = [
            asyncio.ensure_future(self._heartbeat(stop)),
            asyncio.ensure_future(self._telemetry(stop)),
        ]
        try:
            while not stop.is_set():
                await wait_first(stop.wait(), self._wanted_online.wait())
                if stop.is_set():
                    break
                await self._session(stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._failing is not None:
                self._failing.cancel()
            self._save()

    async def _session(self, stop: asyncio.Event) -> None:
        """One period online: until stopped (clean disconnect) or taken offline (will)."""
        will = self.device.will()
        client = MqttClient(
            self._mqtt(
                self.cert_path,
                self.key_path,
                will=Will(will.topic, will.payload, qos=1, retain=True),
                clean=False,
            ),
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            connect_slots=self.connect_slots,
        )
        self.client = client
        await client.start()
        receiving = asyncio.ensure_future(self._receive(client))
        try:
            await wait_first(stop.wait(), self._wanted_offline.wait())
        finally:
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            self.online = False
            self.client = None
            await client.close(publish_will=not stop.is_set())

    def _save(self) -> None:
        if self.directory.exists():
            try:
                device_state.save(self.device, self.directory)
            except OSError as exc:
                logger.warning("%s: cannot save state: %s", self.device_id, exc)

    async def _on_connected(self, session_present: bool) -> None:
        assert self.client is not None
        applied = self.device.applied_version
        await self._send(self.device.birth())
        self._reported(applied)
        self.online_since = time.time()
        # As the agent: a session the broker kept still has the subscription (and queued what
        # came meanwhile); subscribing again would have the retained state sent once more.
        if not (session_present and self._subscribed):
            await self.client.subscribe([(device_topic(self.device_id, DeviceTopic.DESIRED), 1)])
            self._subscribed = True
        self.online = True
        if self.device.silent:
            return
        # As the agent, whose heartbeat is woken by a connect: a status at once, and the next
        # one a full period later.
        status = self.device.status()
        self.device.status_sent(time.monotonic())
        self.client.publish_callback(
            status.topic, status.payload, retain=status.retain, done=self._status_done()
        )

    async def _on_disconnected(self, reason: str) -> None:
        self.online = False

    async def _send(self, outgoing: Outgoing) -> None:
        client = self.client
        if client is None:
            raise MqttError(f"{self.device_id} is offline")
        await client.publish(outgoing.topic, outgoing.payload, retain=outgoing.retain)

    async def _receive(self, client: MqttClient) -> None:
        async for message in client.messages():
            # A message queued in the session can arrive with the CONNACK, before the client
            # counts as connected; answering at once would fail.
            await client.wait_connected()
            received = time.time()
            before = self.device.transaction
            answers = self.device.on_desired(message.payload)
            transaction = self.device.transaction
            if transaction is not before:
                self._schedule_failure(received)
            self._answer(answers)

    def _answer(self, answers: list[Outgoing]) -> None:
        """Send a status and its events. Through callbacks, not awaited: the next message need
        not wait for the broker's acknowledgement of this answer. One that fails is reported
        again by the next heartbeat (or status after a connect)."""
        client = self.client
        if not answers or client is None or not client.connected:
            return
        self.device.status_sent(time.monotonic())
        status, *events = answers
        client.publish_callback(
            status.topic, status.payload, retain=status.retain, done=self._status_done()
        )
        for event in events:
            client.publish_callback(event.topic, event.payload, done=_ignore)

    def _schedule_failure(self, received: float) -> None:
        """Fail the version the device started to apply when its failure is due."""
        if self._failing is not None:
            self._failing.cancel()
            self._failing = None
        transaction = self.device.transaction
        if transaction is None:
            return
        self.rollback, self._rollback_version = (received, 0.0), transaction.version
        self._failing = asyncio.get_running_loop().call_later(
            transaction.seconds, self._fail, transaction.version
        )

    def _fail(self, version: str) -> None:
        self._failing = None
        self._answer(self.device.fail_transaction(version))

    def _status_done(self) -> Callable[[MqttError | None], None]:
        """What to note once the broker acknowledged the status the device has now: the
        version it reports, and that it rolled back."""
        failed = self.device.failed
        rolled_back = (
            failed is not None and failed.rolled_back and failed.version == self._rollback_version
        )
        return functools.partial(self._answered, self.device.applied_version, rolled_back)

    def _answered(self, version: str, rolled_back: bool, error: MqttError | None) -> None:
        if error is not None:
            return
        self._reported(version)
        if rolled_back and self.rollback is not None and not self.rollback[1]:
            self.rollback = (self.rollback[0], time.time())

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, self.device.heartbeat_seconds))  # noqa: S311
        while not stop.is_set():
            wait = self.device.next_heartbeat() - time.monotonic()
            if wait > 0:  # a status went out meanwhile
                await asyncio.sleep(wait)
                continue
            if self.client is not None and self.client.connected and not self.device.silent:
                done = self._status_done()
                try:
                    await self._send(self.device.status())
                except MqttError as exc:
                    done(exc)
                else:
                    done(None)
            self.device.status_sent(time.monotonic())

    async def _telemetry(self, stop: asyncio.Event) -> None:
        if self.settings.metrics_interval <= 0:
            return
        while not stop.is_set():
            self.device.produce_metrics(int(time.time() * 1000))
            while self.client is not None and self.client.connected:
                batch = self.device.next_metrics()
                if batch is None:
                    break
                try:
                    await self._send(batch)
                except MqttError:
                    break
                self.device.acknowledged()
            await asyncio.sleep(self.settings.metrics_interval)


def _ignore(error: MqttError | None) -> None:
    """An event that did not reach the broker: the simulator does not resend events."""


@dataclass(frozen=True)
class Churn:
    """Every ``period`` seconds take ``fraction`` of the online devices offline for
    ``offline_seconds``."""

    fraction: float
    offline_seconds: float = 30.0
    period: float = 60.0


class Fleet:
    """Many simulated devices in one event loop."""

    def __init__(self, settings: FleetSettings, device_ids: Sequence[str]) -> None:
        self.settings = settings
        slots = asyncio.Semaphore(settings.concurrent_connects)
        self.devices = {i: SimulatedFleetDevice(i, settings, slots) for i in device_ids}

    @property
    def online(self) -> int:
        return sum(1 for d in self.devices.values() if d.online)

    def applied(self, version: str) -> int:
        return sum(1 for d in self.devices.values() if d.device.applied_version == version)

    async def run(
        self,
        stop: asyncio.Event,
        *,
        churn: Churn | None = None,
        mqtt_warnings: Counter[str] | None = None,
    ) -> None:
        logger.info(
            "simulating %d devices against %s:%d",
            len(self.devices),
            self.settings.host,
            self.settings.port,
        )
        devices = list(self.devices.values())
        helpers = [asyncio.ensure_future(self._follow_faults(stop))]
        if churn is not None:
            helpers.append(asyncio.ensure_future(self._churn(stop, churn)))
        if self.settings.report_path is not None:
            views = functools.partial(map, SimulatedFleetDevice.view, devices)
            reporting = keep_reporting(self.settings.report_path, views, warnings=mqtt_warnings)
            helpers.append(asyncio.ensure_future(reporting))
        try:
            results = await asyncio.gather(*(d.run(stop) for d in devices), return_exceptions=True)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        for device, result in zip(devices, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("%s stopped: %s", device.device_id, result)

    async def _follow_faults(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """Take up the fault rules of STATE_DIR/faults.json whenever the file changes."""
        path = self.settings.state_dir / FAULTS_NAME
        seen: float | None = None
        while not stop.is_set():
            try:
                stamp = path.stat().st_mtime
            except OSError:
                stamp = None
            if stamp != seen:
                seen = stamp
                rules = load_faults(path) if stamp is not None else self.settings.faults
                for device in self.devices.values():
                    device.device.faults = rules
                logger.info("fault rules: %s", rules)
            await asyncio.sleep(every)

    async def _churn(self, stop: asyncio.Event, churn: Churn) -> None:
        rng = random.Random()  # noqa: S311
        while not stop.is_set():
            await asyncio.sleep(churn.period)
            online = [d for d in self.devices.values() if d.online]
            leaving = rng.sample(online, k=min(len(online), round(len(online) * churn.fraction)))
            for device in leaving:
                device.go_offline()
            logger.info("churn: %d devices offline for %.0f s", len(leaving), churn.offline_seconds)
            await asyncio.sleep(churn.offline_seconds)
            for device in leaving:
                device.come_back()


async def run_fleet(
    settings: FleetSettings, device_ids: Sequence[str], stop: asyncio.Event
) -> None:
    await Fleet(settings, device_ids).run(stop)

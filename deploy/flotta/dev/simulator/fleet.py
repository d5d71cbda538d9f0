"""Run simulated devices over real TLS MQTT connections, each with its own key and certificate.

A device without a certificate enrols first with the bootstrap certificate (client id = its
device id), exactly as the agent does; its key and certificate are kept in the state dir, so a
restarted simulator resumes the same fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from flotta.dev.simulator.device import Outgoing, SimulatedDevice
from flotta.mqtt import MqttClient, MqttError, MqttSettings, TlsFiles, Will
from flotta.pki.files import KEY_MODE, write_atomic
from flotta.pki.keys import build_csr, csr_to_pem, generate_key, private_key_to_pem
from flotta.schemas.codec import decode, encode
from flotta.schemas.crd.hardware import Cpu, Hardware, SystemVendor
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import DeviceTopic, EnrolTopic, device_topic, enrol_topic
from flotta.schemas.wire import EnrolmentAnswer, EnrolmentRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetSettings:
    host: str
    port: int
    ca: Path
    bootstrap_cert: Path
    bootstrap_key: Path
    state_dir: Path
    namespace: str = "default"
    device_set: str = ""
    prefix: str = "sim"
    metrics_interval: float = 30.0
    connect_spread: float = 5.0  # devices start over this many seconds, not all at once


class EnrolmentDeclinedError(Exception):
    """The operator declined or refused this device."""


class SimulatedFleetDevice:
    def __init__(self, device_id: str, settings: FleetSettings) -> None:
        self.device = SimulatedDevice(device_id)
        self.settings = settings
        self.directory = settings.state_dir / device_id
        self.client: MqttClient | None = None
        self.online = False

    @property
    def cert_path(self) -> Path:
        return self.directory / "device.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "device.key"

    def _mqtt(self, cert: Path, key: Path, *, will: Will | None, clean: bool) -> MqttSettings:
        return MqttSettings(
            host=self.settings.host,
            port=self.settings.port,
            client_id=self.device.device_id,
            tls=TlsFiles(self.settings.ca, cert, key, check_hostname=False),
            clean_start=clean,
            session_expiry=0 if clean else 7 * 24 * 3600,
            will=will,
            receive_maximum=20,
            incoming_queue=64,
            max_inflight=20,
            reconnect_base=1.0,
            reconnect_cap=30.0,
        )

    async def enrol(self) -> None:
        """Get a certificate through the bootstrap identity, unless the device has one."""
        if self.cert_path.exists() and self.key_path.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        write_atomic(self.key_path, private_key_to_pem(key), mode=KEY_MODE)
        device_id = self.device.device_id
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
                self.settings.bootstrap_cert, self.settings.bootstrap_key, will=None, clean=True
            )
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
                logger.warning("%s: enrolment failed (%s); retrying", self.device.device_id, exc)
                await asyncio.sleep(random.uniform(2, 10))  # noqa: S311
        will = self.device.will()
        self.client = MqttClient(
            self._mqtt(
                self.cert_path,
                self.key_path,
                will=Will(will.topic, will.payload, qos=1, retain=True),
                clean=False,
            ),
            on_connected=self._on_connected,
        )
        await self.client.start()
        tasks = [
            asyncio.ensure_future(self._receive()),
            asyncio.ensure_future(self._heartbeat(stop)),
            asyncio.ensure_future(self._telemetry(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.close()

    async def _on_connected(self, session_present: bool) -> None:
        assert self.client is not None
        await self._send(self.device.birth())
        await self.client.subscribe([(device_topic(self.device.device_id, DeviceTopic.DESIRED), 1)])
        self.online = True

    async def _send(self, outgoing: Outgoing) -> None:
        assert self.client is not None
        await self.client.publish(outgoing.topic, outgoing.payload, retain=outgoing.retain)

    async def _receive(self) -> None:
        assert self.client is not None
        async for message in self.client.messages():
            for outgoing in self.device.on_desired(message.payload):
                try:
                    await self._send(outgoing)
                except MqttError:
                    break  # the next heartbeat reports the state again

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, self.device.heartbeat_seconds))  # noqa: S311
        while not stop.is_set():
            if self.client is not None and self.client.connected:
                with contextlib.suppress(MqttError):
                    await self._send(self.device.status())
            await asyncio.sleep(self.device.heartbeat_seconds)

    async def _telemetry(self, stop: asyncio.Event) -> None:
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


async def run_fleet(settings: FleetSettings, count: int, stop: asyncio.Event) -> None:
    devices = [SimulatedFleetDevice(f"{settings.prefix}-{i:05d}", settings) for i in range(count)]
    logger.info("simulating %d devices against %s:%d", count, settings.host, settings.port)
    results = await asyncio.gather(*(d.run(stop) for d in devices), return_exceptions=True)
    for device, result in zip(devices, results, strict=True):
        if isinstance(result, BaseException):
            logger.error("%s stopped: %s", device.device.device_id, result)

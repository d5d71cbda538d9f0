"""The control plane's part in agent tests, played with the fleet PKI over the real broker.

``FleetPeer`` connects as ``internal:operator`` (answers enrolment requests and renewal CSRs
by signing them with the fleet PKI, publishes retained desired states) and as
``internal:bridge`` (records what the device reports). It is a real MQTT peer, not a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flotta.mqtt import Message, MqttClient, MqttSettings, TlsFiles
from flotta.pki.authority import DEVICE_VALIDITY
from flotta.pki.keys import certificate_to_pem
from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.errors import ContractError
from flotta.schemas.topics import (
    DeviceTopic,
    EnrolTopic,
    device_topic,
    enrol_topic,
    parse_device_topic,
    parse_enrol_topic,
)
from flotta.schemas.wire import (
    CertificateAnswer,
    ConnectionState,
    DesiredState,
    DeviceEvent,
    EnrolmentAnswer,
    EnrolmentRequest,
    LogsBatch,
    MetricsBatch,
    RenewalRequest,
    StatusReport,
)
from tests.fixtures.brokers import ClientCredentials, TestBroker


def _settings(
    broker: TestBroker,
    creds: ClientCredentials,
    client_id: str,
    *,
    port: int | None = None,
    clean_start: bool = True,
) -> MqttSettings:
    return MqttSettings(
        host=broker.host,
        port=broker.port_for(creds.identity) if port is None else port,
        client_id=client_id,
        tls=TlsFiles(creds.ca, creds.cert, creds.key),
        clean_start=clean_start,
        reconnect_base=0.1,
        reconnect_cap=0.5,
    )


class FleetPeer:
    def __init__(
        self,
        broker: TestBroker,
        *,
        validity: timedelta = DEVICE_VALIDITY,
        namespace: str = "default",
    ) -> None:
        self.broker = broker
        self.validity = validity
        self.namespace = namespace
        operator = broker.operator()
        self.operator = MqttClient(_settings(broker, operator, "test-operator"))
        self.enroller = MqttClient(
            _settings(broker, operator, "test-enroller", port=broker.enrolment_port)
        )
        # A persistent session, as the bridge's: what devices send while it reconnects (the
        # broker restarted, say) is queued for it, not dropped with a clean session.
        self.bridge = MqttClient(
            _settings(broker, broker.bridge(), "test-bridge", clean_start=False)
        )
        self.enrolments: list[EnrolmentRequest] = []
        self.renewals: list[str] = []
        self.statuses: list[StatusReport] = []
        self.connections: list[ConnectionState] = []
        self.events: list[DeviceEvent] = []
        self.metrics: list[MetricsBatch] = []
        self.logs: list[LogsBatch] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> FleetPeer:
        await self.operator.connect()
        await self.enroller.connect()
        await self.bridge.connect()
        await self.operator.subscribe([(f"flotta/devices/+/{DeviceTopic.CSR}", 1)])
        await self.enroller.subscribe([("flotta/enrol/+/request", 1)])
        await self.bridge.subscribe(
            [
                (f"flotta/devices/+/{kind}", 1)
                for kind in (
                    DeviceTopic.STATUS,
                    DeviceTopic.CONNECTION,
                    DeviceTopic.EVENTS,
                    DeviceTopic.METRICS,
                    DeviceTopic.LOGS,
                )
            ]
        )
        self._tasks = [
            asyncio.create_task(self._serve_operator()),
            asyncio.create_task(self._serve_enrolments()),
            asyncio.create_task(self._record()),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.operator.close()
        await self.enroller.close()
        await self.bridge.close()

    # ---- operator -------------------------------------------------------------------------

    async def publish_desired(self, state: DesiredState) -> DesiredState:
        versioned = with_version(state)
        await self.publish_raw(versioned.device_id, encode(versioned))
        return versioned

    async def publish_raw(self, device_id: str, payload: bytes) -> None:
        await self.operator.publish(
            device_topic(device_id, DeviceTopic.DESIRED), payload, qos=1, retain=True
        )

    async def _serve_operator(self) -> None:
        async for message in self.operator.messages():
            with contextlib.suppress(ContractError):
                await self._answer_renewal(message)

    async def _serve_enrolments(self) -> None:
        async for message in self.enroller.messages():
            with contextlib.suppress(ContractError):
                await self._answer_enrolment(message)

    async def _answer_enrolment(self, message: Message) -> None:
        device_id = parse_enrol_topic(message.topic).device_id
        request = decode(EnrolmentRequest, message.payload)
        self.enrolments.append(request)
        cert = self.broker.pki.sign_device_csr(
            request.csr.encode(),
            device_id=device_id,
            namespace=request.target_namespace,
            validity=self.validity,
        )
        answer = EnrolmentAnswer(
            status="issued",
            namespace=request.target_namespace,
            certificate=certificate_to_pem(cert).decode(),
            ca_certificate=self.broker.ca_path.read_text(),
        )
        await self.enroller.publish(
            enrol_topic(device_id, EnrolTopic.ANSWER), encode(answer), retain=True
        )

    async def _answer_renewal(self, message: Message) -> None:
        device_id = parse_device_topic(message.topic).device_id
        request = decode(RenewalRequest, message.payload)
        cert = self.broker.pki.sign_device_csr(
            request.csr.encode(),
            device_id=device_id,
            namespace=self.namespace,
            validity=self.validity,
        )
        self.renewals.append(request.request_id)
        answer = CertificateAnswer(
            request_id=request.request_id,
            status="issued",
            certificate=certificate_to_pem(cert).decode(),
            ca_certificate=self.broker.ca_path.read_text(),
        )
        await self.operator.publish(
            device_topic(device_id, DeviceTopic.CERTIFICATE), encode(answer), qos=1
        )

    # ---- bridge ---------------------------------------------------------------------------

    async def _record(self) -> None:
        async for message in self.bridge.messages():
            if not message.payload:
                continue
            kind = parse_device_topic(message.topic).kind
            if kind is DeviceTopic.STATUS:
                self.statuses.append(decode(StatusReport, message.payload))
            elif kind is DeviceTopic.CONNECTION:
                self.connections.append(decode(ConnectionState, message.payload))
            elif kind is DeviceTopic.EVENTS:
                self.events.append(decode(DeviceEvent, message.payload))
            elif kind is DeviceTopic.METRICS:
                self.metrics.append(decode(MetricsBatch, message.payload))
            elif kind is DeviceTopic.LOGS:
                self.logs.append(decode(LogsBatch, message.payload))

    async def wait_status(
        self, check: Callable[[StatusReport], bool], *, within: float = 60.0
    ) -> StatusReport:
        """The first status report (from now on, or already received) that passes ``check``."""
        return await wait_for(lambda: next((s for s in self.statuses if check(s)), None), within)


async def wait_for(probe: Callable[[], Any], within: float, *, every: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within:.0f} s")
        await asyncio.sleep(every)


def phases(report: StatusReport) -> dict[str, str]:
    return {workload.name: workload.phase for workload in report.workloads}

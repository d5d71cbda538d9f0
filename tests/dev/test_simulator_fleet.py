"""Simulated devices over the real broker: enrol, take a desired state, report, buffer."""

import asyncio
from pathlib import Path

import pytest

from flotta.dev.simulator.simulated_fleet import FleetSettings, SimulatedFleetDevice
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles
from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import ConnectionState, DesiredState, DesiredWorkload, StatusReport
from tests.fixtures.brokers import TestBroker
from tests.fixtures.operator_peer import EnrolmentPeer


def fleet_settings(broker: TestBroker, tmp_path: Path) -> FleetSettings:
    bootstrap = broker.bootstrap("sim")
    return FleetSettings(
        host=broker.host,
        port=broker.port,
        enrolment_port=broker.enrolment_port,
        ca=broker.ca_path,
        bootstrap_cert=bootstrap.cert,
        bootstrap_key=bootstrap.key,
        state_dir=tmp_path / "sim",
        connect_spread=0.0,
        metrics_interval=0.2,
    )


async def test_simulated_device_enrols_applies_and_reports(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    creds = mosquitto_broker.operator()
    watcher = MqttClient(
        MqttSettings(
            host=mosquitto_broker.host,
            port=mosquitto_broker.services_port,
            client_id="test-watcher",
            tls=TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False),
            clean_start=True,
        )
    )
    device = SimulatedFleetDevice("sim-00001", fleet_settings(mosquitto_broker, tmp_path))
    stop = asyncio.Event()
    async with EnrolmentPeer(mosquitto_broker) as peer:
        await watcher.connect()
        await watcher.subscribe(
            [
                (device_topic("sim-00001", DeviceTopic.CONNECTION), 1),
                (device_topic("sim-00001", DeviceTopic.STATUS), 1),
            ]
        )
        running = asyncio.ensure_future(device.run(stop))
        try:
            desired = with_version(
                DesiredState(
                    device_id="sim-00001",
                    namespace="default",
                    workloads=[DesiredWorkload(name="counter", namespace="default", pod_spec={})],
                )
            )
            await watcher.publish(
                device_topic("sim-00001", DeviceTopic.DESIRED), encode(desired), retain=True
            )
            applied = None
            async with asyncio.timeout(20):
                async for message in watcher.messages():
                    if message.topic.endswith("/connection"):
                        assert decode(ConnectionState, message.payload).state == "online"
                        continue
                    report = decode(StatusReport, message.payload)
                    if report.applied_version == desired.version:
                        applied = report
                        break
            assert applied is not None
            assert [(w.name, w.phase) for w in applied.workloads] == [("counter", "Running")]
            assert peer.issued == ["sim-00001"]
            assert device.cert_path.exists()
            assert oct(device.key_path.stat().st_mode & 0o777) == "0o600"
        finally:
            stop.set()
            await running
            await watcher.close()


async def test_declined_device_stops_with_a_clear_error(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    device = SimulatedFleetDevice("sim-00002", fleet_settings(mosquitto_broker, tmp_path))
    async with EnrolmentPeer(mosquitto_broker, decline=frozenset({"sim-00002"})):
        with pytest.raises(Exception, match="enrolment declined"):
            await asyncio.wait_for(device.enrol(), 10)
    assert not device.cert_path.exists()

"""The operator's MQTT session (``flotta.operator.broker``) against a real Mosquitto: one
thread, subscriptions re-sent after every connection, pending publishes failed with
TransportError when the connection drops, nothing left running after ``stop``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from flotta.mqtt import MqttClient, MqttSettings, TlsFiles
from flotta.operator.broker import Broker, BrokerSettings, Message
from flotta.operator.errors import TransportError
from flotta.schemas.topics import DeviceTopic, device_filter, device_topic
from tests.fixtures.brokers import TestBroker

CONNECTION_A = device_topic("dev-a", DeviceTopic.CONNECTION)


@dataclass
class Session:
    broker: Broker
    mosquitto: TestBroker
    connects: list[bool] = field(default_factory=list)
    reconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def on_connected(self, session_present: bool) -> None:
        assert self.broker.connected.is_set()  # publishers may start now
        self.connects.append(session_present)
        if len(self.connects) > 1:
            self.reconnected.set()

    def device(self) -> MqttClient:
        return MqttClient(device_settings(self.mosquitto, "dev-a"))


def operator_settings(broker: TestBroker) -> BrokerSettings:
    creds = broker.operator()
    return BrokerSettings(
        host=broker.host,
        port=broker.port,
        ca=broker.ca_path,
        cert=creds.cert,
        key=creds.key,
        incoming_limit=10,
        reconnect_base=0.05,
        reconnect_cap=0.5,
    )


def device_settings(broker: TestBroker, device_id: str) -> MqttSettings:
    creds = broker.device(device_id)
    return MqttSettings(
        broker.host,
        broker.port,
        device_id,
        TlsFiles(ca=creds.ca, cert=creds.cert, key=creds.key),
        reconnect_base=0.05,
        reconnect_cap=0.5,
    )


@pytest.fixture
async def session(mosquitto_broker: TestBroker) -> AsyncIterator[Session]:
    before = asyncio.all_tasks()
    holder: list[Session] = []
    broker = Broker(
        operator_settings(mosquitto_broker),
        subscriptions=[device_filter(DeviceTopic.CONNECTION)],
        on_connected=lambda present: holder[0].on_connected(present),
    )
    holder.append(Session(broker, mosquitto_broker))
    await broker.start()
    try:
        async with asyncio.timeout(10):
            await broker.connected.wait()
        yield holder[0]
    finally:
        await broker.stop()
    await asyncio.sleep(0)
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leaked, f"tasks left behind: {sorted(t.get_name() for t in leaked)}"
    assert not broker.connected.is_set()


async def next_message(broker: Broker, within: float = 5.0) -> Message:
    async with asyncio.timeout(within):
        return await broker.messages.get()


async def test_messages_arrive_and_publishes_are_acknowledged(session: Session) -> None:
    broker = session.broker
    assert session.connects == [False]
    assert not [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client")]
    async with session.device() as device:
        await device.publish(CONNECTION_A, b"online", retain=True)
        assert await next_message(broker) == Message(CONNECTION_A, b"online", False)
    await broker.publish_nowait(device_topic("dev-a", DeviceTopic.DESIRED), b"{}", retain=True)
    acked: list[TransportError | None] = []
    broker.publish_callback(
        device_topic("dev-a", DeviceTopic.DESIRED), b"{}", retain=True, done=acked.append
    )
    async with asyncio.timeout(5):
        while not acked:  # noqa: ASYNC110 (a callback list, no event to wait on)
            await asyncio.sleep(0.01)
    assert acked == [None]


async def test_a_refused_publish_completes_with_transport_error(session: Session) -> None:
    with pytest.raises(TransportError, match="refused"):
        await session.broker.publish_nowait("flotta/not-in-the-acl", b"x")
    assert session.broker.connected.is_set()


async def test_reconnects_with_its_session_and_subscriptions_after_a_broker_restart(
    session: Session, mosquitto_broker: TestBroker
) -> None:
    broker = session.broker
    async with session.device() as device:
        await device.publish(CONNECTION_A, b"online", retain=True)
    assert (await next_message(broker)).payload == b"online"
    await asyncio.to_thread(mosquitto_broker.restart)
    async with asyncio.timeout(20):
        await session.reconnected.wait()
    assert session.connects == [False, True]  # the broker's store kept the session
    async with session.device() as device:
        await device.publish(CONNECTION_A, b"back", retain=False)
    # The kept subscription delivers what comes now; no retained state is sent again (as a
    # second subscription would, for every device at once after a restart).
    message = await next_message(broker)
    assert (message.topic, message.payload) == (CONNECTION_A, b"back")


async def test_pending_publishes_fail_with_transport_error_when_the_connection_drops(
    session: Session, mosquitto_broker: TestBroker
) -> None:
    broker = session.broker
    outcomes: list[TransportError | None] = []
    connected_when_failed: list[bool] = []

    def done(error: TransportError | None) -> None:
        outcomes.append(error)
        if error is not None:
            connected_when_failed.append(broker.connected.is_set())

    for n in range(2000):
        topic = device_topic(f"d-{n}", DeviceTopic.DESIRED)
        broker.publish_callback(topic, b"x", retain=True, done=done)
    await asyncio.to_thread(mosquitto_broker.stop)
    async with asyncio.timeout(10):
        while len(outcomes) < 2000:  # noqa: ASYNC110 (callbacks, no event to wait on)
            await asyncio.sleep(0.01)
    failed = [error for error in outcomes if error is not None]
    assert failed, "the broker stopped with nothing in flight; raise the count"
    assert all(isinstance(error, TransportError) for error in failed)
    assert not any(connected_when_failed)  # the publisher sees the loss before the failure
    assert len(outcomes) == 2000
    with pytest.raises(TransportError):
        await broker.publish_nowait(device_topic("d-0", DeviceTopic.DESIRED), b"while down")


async def test_a_full_queue_holds_messages_back_instead_of_dropping(
    session: Session,
) -> None:
    broker = session.broker
    async with session.device() as device:
        for n in range(30):  # three times the operator's queue
            await device.publish(CONNECTION_A, str(n).encode())
        async with asyncio.timeout(5):
            while not broker.messages.full():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        received = [(await next_message(broker)).payload for _ in range(30)]
    assert received == [str(n).encode() for n in range(30)]
    assert broker.dropped == 0

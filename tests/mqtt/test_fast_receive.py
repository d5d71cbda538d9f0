"""The fast receive path (``fast_receive``), messages handed to ``on_message``, and the
subscription options the bridge uses, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from flotta.mqtt import Message, MqttClient, MqttError, RetainHandling
from flotta.schemas.topics import DeviceTopic, device_filter, device_topic
from tests.fixtures.brokers import TestBroker
from tests.fixtures.proxy import CuttableProxy
from tests.mqtt.helpers import settings_for

STATUS_A = device_topic("dev-a", DeviceTopic.STATUS)
CONNECTION_A = device_topic("dev-a", DeviceTopic.CONNECTION)


class Received:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, count: int, within: float = 10.0) -> list[Message]:
        async with asyncio.timeout(within):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages


@pytest.mark.parametrize("fast", [True, False])
async def test_on_message_gets_every_message_as_read_with_or_without_the_fast_path(
    mosquitto_broker: TestBroker, fast: bool
) -> None:
    received = Received()
    operator_settings = settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    async with (
        MqttClient(
            operator_settings, manual_ack=True, on_message=received, fast_receive=fast
        ) as operator,
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
        ) as device,
    ):
        await operator.subscribe([(device_filter(DeviceTopic.STATUS), 2)])
        for qos in (0, 1, 2):
            await device.publish(STATUS_A, f"q{qos}".encode(), qos=qos)
        messages = await received.wait_for(3)
        assert [(m.topic, m.payload, m.qos, m.retain) for m in messages] == [
            (STATUS_A, f"q{qos}".encode(), qos, False) for qos in (0, 1, 2)
        ]
        assert all(m.connection == 1 and not m.duplicate for m in messages)
        # the fast path skips the properties; paho still reads QoS 2 (and, without it, all)
        assert [m.properties is None for m in messages] == [fast, fast, False]
        assert operator.counters.received == 3
        for message in messages:
            message.ack()
        with pytest.raises(MqttError):
            async for _ in operator.messages():
                pass


async def test_unacked_fast_messages_come_again_and_acked_ones_do_not(
    mosquitto_broker: TestBroker,
) -> None:
    proxy = CuttableProxy(mosquitto_broker.host, mosquitto_broker.port)
    await proxy.start()
    received = Received()
    operator_settings = dataclasses.replace(
        settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator"),
        port=proxy.port,
    )
    try:
        async with (
            MqttClient(
                operator_settings,
                manual_ack=True,
                on_message=received,
                fast_receive=True,
            ) as operator,
            MqttClient(
                settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
            ) as device,
        ):
            await operator.subscribe([(device_filter(DeviceTopic.STATUS), 1)])
            await device.publish(STATUS_A, b"acked", qos=1)
            await device.publish(STATUS_A, b"not acked", qos=1)
            first, second = await received.wait_for(2)
            first.ack()
            await asyncio.sleep(0.3)  # the PUBACK reaches the broker
            proxy.cut()
            again = (await received.wait_for(3))[2]
            assert (again.payload, again.duplicate, again.connection) == (b"not acked", True, 2)
            second.ack()  # of the connection that is gone: void
            assert operator.counters.stale_acks == 1
            again.ack()
            assert operator.counters.connects == 2
            await asyncio.sleep(0.3)
            assert len(received.messages) == 3
    finally:
        await proxy.close()


async def test_subscription_options_and_a_subscription_not_kept(
    mosquitto_broker: TestBroker,
) -> None:
    """Retain handling 2 sends no retained message; retain as published shows the flag on a
    live retained message; ``keep=False`` is not subscribed again after a reconnect."""
    proxy = CuttableProxy(mosquitto_broker.host, mosquitto_broker.port)
    await proxy.start()
    received = Received()
    reconnected = asyncio.Event()

    async def on_connected(session_present: bool) -> None:
        if operator.counters.connects == 2:
            reconnected.set()

    device_settings = settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
    operator = MqttClient(
        dataclasses.replace(
            settings_for(
                mosquitto_broker, mosquitto_broker.operator(), "operator", session_expiry=0
            ),
            port=proxy.port,
        ),
        manual_ack=True,
        on_message=received,
        fast_receive=True,
        on_connected=on_connected,
    )
    try:
        async with MqttClient(device_settings) as device:
            await device.publish(CONNECTION_A, b"retained before", qos=1, retain=True)
            async with operator:
                await operator.subscribe(
                    [(device_filter(DeviceTopic.CONNECTION), 1)],
                    retain_handling=RetainHandling.DO_NOT_SEND,
                    retain_as_published=True,
                    keep=False,
                )
                await device.publish(CONNECTION_A, b"live", qos=1, retain=True)
                (live,) = await received.wait_for(1)
                assert (live.payload, live.retain) == (b"live", True)
                live.ack()
                proxy.cut()
                async with asyncio.timeout(10):
                    await reconnected.wait()
                await device.publish(CONNECTION_A, b"not subscribed", qos=1, retain=True)
                await asyncio.sleep(0.5)
                assert [m.payload for m in received.messages] == [b"live"]
            await device.publish(CONNECTION_A, b"", qos=1, retain=True)  # clear it
    finally:
        await proxy.close()

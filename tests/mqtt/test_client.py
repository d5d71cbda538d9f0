"""flotta.mqtt against a real Mosquitto with mutual TLS and the Flotta ACL."""

import asyncio

import pytest

from flotta.mqtt import (
    ConnectError,
    DisconnectedError,
    MqttClient,
    MqttSettings,
    PublishError,
    SubscribeError,
    TlsFiles,
    Will,
)
from flotta.schemas.topics import DeviceTopic, device_topic
from tests.fixtures.brokers import ClientCredentials, TestBroker


def settings_for(
    broker: TestBroker, creds: ClientCredentials, client_id: str | None = None, **extra: object
) -> MqttSettings:
    options: dict[str, object] = {
        "reconnect_base": 0.1,
        "reconnect_cap": 0.5,
        "connect_timeout": 5.0,
        **extra,
    }
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id=client_id or creds.identity,
        tls=TlsFiles(ca=creds.ca, cert=creds.cert, key=creds.key, check_hostname=False),
        **options,  # type: ignore[arg-type]
    )


async def next_message(client: MqttClient, wait: float = 5.0) -> tuple[str, bytes, bool]:
    async def first() -> tuple[str, bytes, bool]:
        async for message in client.messages():
            return message.topic, message.payload, message.retain
        raise AssertionError("unreachable")

    return await asyncio.wait_for(first(), wait)


async def test_retained_desired_state_reaches_a_late_subscriber(
    mosquitto_broker: TestBroker,
) -> None:
    topic = device_topic("cam-1", DeviceTopic.DESIRED)
    operator = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.operator()))
    device = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device("cam-1")))
    try:
        await operator.connect()
        await operator.publish(topic, b"v1", retain=True)
        await device.connect()
        await device.subscribe([(topic, 1)])
        assert await next_message(device) == (topic, b"v1", True)
        assert operator.counters.published == 1
    finally:
        await operator.close()
        await device.close()


async def test_refused_publish_raises_and_foreign_topics_are_never_delivered(
    mosquitto_broker: TestBroker,
) -> None:
    operator = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.operator()))
    device = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device("cam-1")))
    try:
        await operator.connect()
        await device.connect()
        with pytest.raises(PublishError, match="flotta/devices/cam-1/desired"):
            await device.publish(device_topic("cam-1", DeviceTopic.DESIRED), b"x")
        await device.publish(device_topic("cam-1", DeviceTopic.STATUS), b"ok")  # allowed
        # Mosquitto does not check SUBSCRIBE against the ACL; each delivery is checked.
        await device.subscribe([("flotta/devices/+/desired", 1)])
        await operator.publish(device_topic("cam-2", DeviceTopic.DESIRED), b"not-yours")
        await operator.publish(device_topic("cam-1", DeviceTopic.DESIRED), b"yours")
        assert (await next_message(device))[1] == b"yours"
        with pytest.raises(SubscribeError, match="QoS 3"):
            await device.subscribe([("flotta/devices/cam-1/desired", 3)])
    finally:
        await operator.close()
        await device.close()


async def test_revoked_certificate_cannot_connect(mosquitto_broker: TestBroker) -> None:
    creds = mosquitto_broker.device("cam-1")
    mosquitto_broker.revoke(creds)
    revoked = MqttClient(settings_for(mosquitto_broker, creds, connect_timeout=2.0))
    try:
        with pytest.raises(ConnectError, match="cannot connect"):
            await revoked.connect()
        assert revoked.counters.connect_failures >= 1
    finally:
        await revoked.close()


async def test_publish_while_disconnected_fails_fast(mosquitto_broker: TestBroker) -> None:
    client = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device("cam-1")))
    with pytest.raises(DisconnectedError):
        await client.publish(device_topic("cam-1", DeviceTopic.STATUS), b"x")
    await client.close()


async def test_persistent_session_keeps_messages_for_an_offline_device(
    mosquitto_broker: TestBroker,
) -> None:
    topic = device_topic("cam-1", DeviceTopic.DESIRED)
    creds = mosquitto_broker.device("cam-1")
    operator = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.operator()))
    device = MqttClient(settings_for(mosquitto_broker, creds))
    try:
        await operator.connect()
        await device.connect()
        await device.subscribe([(topic, 1)])
        await device.close()
        await operator.publish(topic, b"while-offline", retain=False)
        device = MqttClient(settings_for(mosquitto_broker, creds))
        await device.connect()  # same client id, clean_start False: the session is resumed
        assert await next_message(device) == (topic, b"while-offline", False)
    finally:
        await operator.close()
        await device.close()


async def test_unacknowledged_message_is_redelivered_after_reconnect(
    mosquitto_broker: TestBroker,
) -> None:
    topic = device_topic("cam-1", DeviceTopic.STATUS)
    bridge_creds = mosquitto_broker.bridge()
    device = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device("cam-1")))
    bridge = MqttClient(settings_for(mosquitto_broker, bridge_creds), manual_ack=True)
    try:
        await bridge.connect()
        await bridge.subscribe([("$share/bridges/flotta/devices/+/status", 1)])
        await device.connect()
        await device.publish(topic, b"heartbeat-1")
        assert (await next_message(bridge))[1] == b"heartbeat-1"
        await bridge.close()  # dies before acknowledging
        bridge = MqttClient(settings_for(mosquitto_broker, bridge_creds), manual_ack=True)
        await bridge.connect()
        async with asyncio.timeout(5):
            async for message in bridge.messages():
                assert message.payload == b"heartbeat-1"
                bridge.ack(message)
                break
    finally:
        await device.close()
        await bridge.close()


async def test_reconnects_by_itself_after_a_broker_restart(mosquitto_broker: TestBroker) -> None:
    connects: list[bool] = []
    reconnected = asyncio.Event()

    async def on_connected(session_present: bool) -> None:
        connects.append(session_present)
        if len(connects) == 2:
            reconnected.set()

    topic = device_topic("cam-1", DeviceTopic.STATUS)
    device = MqttClient(
        settings_for(mosquitto_broker, mosquitto_broker.device("cam-1")), on_connected=on_connected
    )
    try:
        await device.connect()
        mosquitto_broker.restart()
        await asyncio.wait_for(reconnected.wait(), 15)
        await device.publish(topic, b"after-restart")
        assert connects == [False, True]  # the persisted session survived the restart
        assert device.counters.connects == 2
    finally:
        await device.close()


async def test_will_is_published_when_the_connection_dies(mosquitto_broker: TestBroker) -> None:
    topic = device_topic("cam-1", DeviceTopic.CONNECTION)
    observer = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.bridge()))
    device = MqttClient(
        settings_for(
            mosquitto_broker,
            mosquitto_broker.device("cam-1"),
            will=Will(topic, b"offline", qos=1, retain=True),
        )
    )
    try:
        await observer.connect()
        await observer.subscribe([(topic, 1)])
        await device.connect()
        await device.close(publish_will=True)
        assert (await next_message(observer))[1] == b"offline"
    finally:
        await observer.close()


async def test_many_concurrent_publishes_all_acknowledged(mosquitto_broker: TestBroker) -> None:
    operator = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.operator()))
    try:
        await operator.connect()
        await asyncio.gather(
            *(
                operator.publish(device_topic(f"dev-{i}", DeviceTopic.DESIRED), b"x", retain=True)
                for i in range(2000)
            )
        )
        assert operator.counters.published == 2000
        assert operator.counters.publish_failures == 0
    finally:
        await operator.close()


async def test_close_leaves_no_task_behind(mosquitto_broker: TestBroker) -> None:
    before = asyncio.all_tasks()
    client = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device("cam-1")))
    await client.connect()
    await client.close()
    assert asyncio.all_tasks() - before == set()

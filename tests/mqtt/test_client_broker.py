"""flotta.mqtt against a real Mosquitto with mutual TLS and the Flotta ACL."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import pytest

from flotta.mqtt import (
    ConnectError,
    DisconnectedError,
    Message,
    MqttClient,
    PublishError,
    Will,
)
from flotta.pki.store import PkiStore
from flotta.schemas.topics import DeviceTopic, device_filter, device_topic
from tests.fixtures.brokers import TestBroker, new_fleet_pki
from tests.fixtures.proxy import CuttableProxy
from tests.mqtt.helpers import settings_for

DESIRED_A = device_topic("dev-a", DeviceTopic.DESIRED)
STATUS_A = device_topic("dev-a", DeviceTopic.STATUS)
NOT_AUTHORIZED = 0x87
CONNACK_UNSPECIFIED = 0x80


async def _next(client: MqttClient, within: float = 5.0) -> Message:
    async with asyncio.timeout(within):
        async for message in client.messages():
            return message
    raise AssertionError("the client was closed")


async def test_device_and_operator_round_trip(mosquitto_broker: TestBroker) -> None:
    device_creds = mosquitto_broker.device("dev-a")
    operator_creds = mosquitto_broker.operator()
    async with (
        MqttClient(settings_for(mosquitto_broker, device_creds, "dev-a")) as device,
        MqttClient(settings_for(mosquitto_broker, operator_creds, "operator")) as operator,
    ):
        assert await device.subscribe([(DESIRED_A, 1)]) == [1]
        assert await operator.subscribe([(device_filter(DeviceTopic.STATUS), 1)]) == [1]
        await operator.publish(DESIRED_A, b'{"v": 1}', qos=1)
        got = await _next(device)
        assert (got.topic, got.payload, got.qos) == (DESIRED_A, b'{"v": 1}', 1)
        got.ack()
        await device.publish(STATUS_A, b"up", qos=1)
        status = await _next(operator)
        assert (status.topic, status.payload) == (STATUS_A, b"up")
        status.ack()
        assert operator.counters.published == 1
        assert device.counters.received == 1


async def test_small_packets_leave_at_once(mosquitto_broker: TestBroker) -> None:
    """Nagle's algorithm is off: a PUBACK or a status must not wait for the broker's delayed
    TCP ACK of the packet before it (up to 40 ms a hop on Linux)."""
    creds = mosquitto_broker.device("dev-a")
    async with MqttClient(settings_for(mosquitto_broker, creds, "dev-a")) as device:
        sock = device._paho.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_retained_desired_state_reaches_a_late_subscriber(
    mosquitto_broker: TestBroker,
) -> None:
    async with MqttClient(
        settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    ) as operator:
        await operator.publish(DESIRED_A, b"config-7", qos=1, retain=True)
    async with MqttClient(
        settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
    ) as device:
        await device.subscribe([(DESIRED_A, 1)])
        got = await _next(device)
        assert (got.payload, got.retain) == (b"config-7", True)
        got.ack()


async def test_publish_outside_the_acl_raises_publish_error(mosquitto_broker: TestBroker) -> None:
    async with MqttClient(
        settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
    ) as device:
        with pytest.raises(PublishError) as refused:
            await device.publish(device_topic("dev-b", DeviceTopic.STATUS), b"forged")
        assert refused.value.reason_code == NOT_AUTHORIZED
        assert "Not authorized" in str(refused.value)
        assert device.counters.publish_failures == 1
        await device.publish(STATUS_A, b"still connected")
        assert device.connected


async def test_client_without_certificate_is_refused(mosquitto_broker: TestBroker) -> None:
    client = MqttClient(settings_for(mosquitto_broker, None, "anonymous"))
    # TLS 1.3: the refusal comes after the handshake, as an alert or, racing it, as an EOF
    with pytest.raises(ConnectError, match=r"certificate required|EOF occurred") as refused:
        await client.connect()
    assert f"{mosquitto_broker.host}:{mosquitto_broker.port}" in str(refused.value)
    assert not client.connected


async def test_broker_of_another_ca_is_not_trusted(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    other: PkiStore = new_fleet_pki(tmp_path / "other-pki")
    settings = settings_for(
        mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a", ca=other.ca_cert_path
    )
    with pytest.raises(ConnectError, match="server certificate not trusted"):
        await MqttClient(settings).connect()


async def test_queued_qos1_messages_arrive_when_the_session_resumes(
    mosquitto_broker: TestBroker,
) -> None:
    creds = mosquitto_broker.device("dev-a")
    first = MqttClient(settings_for(mosquitto_broker, creds, "dev-a"))
    await first.connect()
    await first.subscribe([(DESIRED_A, 1)])
    await first.close()
    async with MqttClient(
        settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    ) as operator:
        for n in range(3):
            await operator.publish(DESIRED_A, f"offline-{n}".encode(), qos=1)
    sessions: list[bool] = []

    async def on_connected(session_present: bool) -> None:
        sessions.append(session_present)

    async with MqttClient(
        settings_for(mosquitto_broker, creds, "dev-a"), on_connected=on_connected
    ) as again:
        payloads = []
        for _ in range(3):
            message = await _next(again)
            payloads.append(message.payload)
            message.ack()
    assert sessions == [True]
    assert payloads == [b"offline-0", b"offline-1", b"offline-2"]


async def test_a_message_not_acked_is_redelivered_after_reconnect(
    mosquitto_broker: TestBroker,
) -> None:
    creds = mosquitto_broker.device("dev-a")
    async with (
        MqttClient(settings_for(mosquitto_broker, creds, "dev-a"), manual_ack=True) as device,
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
        ) as operator,
    ):
        await device.subscribe([(DESIRED_A, 1)])
        await operator.publish(DESIRED_A, b"handle-me", qos=1)
        unhandled = await _next(device)  # the "replica" dies before acking
        assert not unhandled.duplicate
    async with MqttClient(
        settings_for(mosquitto_broker, creds, "dev-a"), manual_ack=True
    ) as device:
        again = await _next(device)
        assert (again.payload, again.duplicate) == (b"handle-me", True)
        again.ack()
    async with MqttClient(
        settings_for(mosquitto_broker, creds, "dev-a"), manual_ack=True
    ) as device:
        with pytest.raises(TimeoutError):
            await _next(device, within=1.0)  # acked: not delivered a third time


async def test_reconnects_by_itself_after_a_broker_restart(mosquitto_broker: TestBroker) -> None:
    events: list[str] = []
    reconnected = asyncio.Event()

    async def on_connected(session_present: bool) -> None:
        events.append(f"connected session={session_present}")
        if len(events) > 1:
            reconnected.set()

    async def on_disconnected(reason: str) -> None:
        events.append("disconnected")

    creds = mosquitto_broker.device("dev-a")
    async with MqttClient(
        settings_for(mosquitto_broker, creds, "dev-a"),
        on_connected=on_connected,
        on_disconnected=on_disconnected,
    ) as device:
        await device.subscribe([(DESIRED_A, 1)])
        await asyncio.to_thread(mosquitto_broker.restart)
        async with asyncio.timeout(20):
            await reconnected.wait()
        assert device.connected
        assert device.counters.reconnects == 1
        # The session survived in the broker's store: the subscription still delivers.
        async with MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
        ) as operator:
            await operator.publish(DESIRED_A, b"after-restart")
        got = await _next(device)
        assert got.payload == b"after-restart"
        got.ack()
    assert events[0] == "connected session=False"
    assert events[1] == "disconnected"
    assert events[2].startswith("connected")


async def test_close_leaves_no_task_behind(mosquitto_broker: TestBroker) -> None:
    before = asyncio.all_tasks()
    client = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a"))
    await client.connect()
    await client.subscribe([(DESIRED_A, 1)])
    assert len(asyncio.all_tasks() - before) == 2  # supervisor and housekeeping
    await client.close()
    assert asyncio.all_tasks() == before
    assert not client.connected
    assert [m async for m in client.messages()] == []


async def test_inbox_stays_bounded_by_receive_maximum(mosquitto_broker: TestBroker) -> None:
    settings = settings_for(
        mosquitto_broker,
        mosquitto_broker.device("dev-a"),
        "dev-a",
        receive_maximum=2,
        incoming_queue=2,
    )
    async with (
        MqttClient(settings, manual_ack=True) as device,
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
        ) as operator,
    ):
        await device.subscribe([(DESIRED_A, 1)])
        for n in range(6):
            await operator.publish(DESIRED_A, str(n).encode(), qos=1)
        async with asyncio.timeout(5):
            while device.queue_depth < 2:  # noqa: ASYNC110 (the inbox has no event to wait on)
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        # The broker holds the rest back until we ack: nothing is dropped.
        assert (device.queue_depth, device.counters.dropped) == (2, 0)
        seen = []
        for _ in range(6):
            message = await _next(device)
            seen.append(int(message.payload))
            message.ack()
        assert seen == list(range(6))
        assert device.counters.dropped == 0


async def test_qos0_overflow_is_counted(mosquitto_broker: TestBroker) -> None:
    settings = settings_for(
        mosquitto_broker,
        mosquitto_broker.device("dev-a"),
        "dev-a",
        receive_maximum=2,
        incoming_queue=2,
    )
    async with (
        MqttClient(settings, manual_ack=True) as device,
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
        ) as operator,
    ):
        await device.subscribe([(DESIRED_A, 0)])
        for n in range(5):
            await operator.publish(DESIRED_A, str(n).encode(), qos=1)
        async with asyncio.timeout(5):
            while device.counters.received < 5:  # noqa: ASYNC110 (a counter, no event to wait on)
                await asyncio.sleep(0.05)
        assert (device.queue_depth, device.counters.dropped) == (2, 3)


async def test_publishes_in_flight_fail_when_the_connection_drops(
    mosquitto_broker: TestBroker,
) -> None:
    settings = settings_for(
        mosquitto_broker,
        mosquitto_broker.operator(),
        "operator",
        reconnect_base=30.0,  # stay disconnected for the assertions
        reconnect_cap=30.0,
    )
    async with MqttClient(settings) as operator:
        publishes = [
            asyncio.create_task(operator.publish(device_topic(f"d-{n}", DeviceTopic.DESIRED), b"x"))
            for n in range(2000)
        ]
        await asyncio.sleep(0)  # all sent to paho, most not acknowledged yet
        await asyncio.to_thread(mosquitto_broker.stop)
        results = await asyncio.gather(*publishes, return_exceptions=True)
        failed = [r for r in results if isinstance(r, DisconnectedError)]
        assert failed, "the broker stopped with nothing in flight; raise the count"
        assert all(r is None or isinstance(r, DisconnectedError) for r in results)
        assert operator.counters.published + len(failed) == 2000
        assert operator.publishes_in_flight == 0  # every waiter was settled and removed
        with pytest.raises(DisconnectedError, match="not connected"):
            await operator.publish(STATUS_A, b"while down")


async def test_network_loss_publishes_the_will_and_the_client_comes_back(
    mosquitto_broker: TestBroker,
) -> None:
    connection_a = device_topic("dev-a", DeviceTopic.CONNECTION)
    proxy = CuttableProxy(mosquitto_broker.host, mosquitto_broker.port)
    await proxy.start()
    connected = asyncio.Event()

    async def on_connected(session_present: bool) -> None:
        connected.set()

    device_settings = dataclasses.replace(
        settings_for(
            mosquitto_broker,
            mosquitto_broker.device("dev-a"),
            "dev-a",
            will=Will(connection_a, b"offline", qos=1, retain=True),
        ),
        port=proxy.port,
    )
    try:
        async with (
            MqttClient(
                settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
            ) as operator,
            MqttClient(device_settings, on_connected=on_connected) as device,
        ):
            await operator.subscribe([(connection_a, 1)])
            connected.clear()
            proxy.cut()
            will = await _next(operator)
            assert (will.topic, will.payload) == (connection_a, b"offline")
            will.ack()
            async with asyncio.timeout(10):
                await connected.wait()
            assert device.counters.reconnects == 1
            await device.publish(connection_a, b"online", retain=True)
    finally:
        await proxy.close()


async def test_start_waits_for_a_broker_that_is_down(mosquitto_broker: TestBroker) -> None:
    creds = mosquitto_broker.device("dev-a")
    await asyncio.to_thread(mosquitto_broker.stop)
    connected = asyncio.Event()

    async def on_connected(session_present: bool) -> None:
        connected.set()

    client = MqttClient(settings_for(mosquitto_broker, creds, "dev-a"), on_connected=on_connected)
    await client.start()  # does not raise while the broker is down
    try:
        await asyncio.sleep(0.5)
        assert not client.connected
        assert client.counters.connect_failures >= 2
        await asyncio.to_thread(mosquitto_broker.start)
        async with asyncio.timeout(10):
            await connected.wait()
        await client.publish(STATUS_A, b"finally")
    finally:
        await client.close()


async def test_a_second_ack_is_not_sent(mosquitto_broker: TestBroker) -> None:
    async with (
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a"),
            manual_ack=True,
        ) as device,
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
        ) as operator,
    ):
        await device.subscribe([(DESIRED_A, 1)])
        await operator.publish(DESIRED_A, b"one")
        first = await _next(device)
        first.ack()
        first.ack()  # harmless: the mid may already belong to the next message
        await operator.publish(DESIRED_A, b"two")
        second = await _next(device)
        assert second.payload == b"two"
        second.ack()
        assert device.counters.stale_acks == 0


async def test_connack_refusal_carries_the_reason_code(mosquitto_broker: TestBroker) -> None:
    """Mosquitto 2.0 refuses an empty client id with a persistent session: CONNACK 0x80."""
    settings = settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "")
    with pytest.raises(ConnectError) as refused:
        await MqttClient(settings).connect()
    assert refused.value.reason_code == CONNACK_UNSPECIFIED
    assert str(refused.value).endswith(": Unspecified error (reason code 0x80)")


async def test_subscriptions_are_renewed_when_the_session_is_gone(
    mosquitto_broker: TestBroker,
) -> None:
    proxy = CuttableProxy(mosquitto_broker.host, mosquitto_broker.port)
    await proxy.start()
    sessions: list[bool] = []
    reconnected = asyncio.Event()

    async def on_connected(session_present: bool) -> None:
        sessions.append(session_present)
        if len(sessions) == 2:
            reconnected.set()

    device_settings = dataclasses.replace(
        settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a", session_expiry=0),
        port=proxy.port,
    )
    try:
        async with (
            MqttClient(device_settings, on_connected=on_connected) as device,
            MqttClient(
                settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
            ) as operator,
        ):
            await device.subscribe([(DESIRED_A, 1)])
            proxy.cut()
            async with asyncio.timeout(10):
                await reconnected.wait()
            assert sessions == [False, False]  # the broker forgot us: we subscribed again
            await operator.publish(DESIRED_A, b"after resubscribe")
            got = await _next(device)
            assert got.payload == b"after resubscribe"
            got.ack()
    finally:
        await proxy.close()


async def test_a_silent_network_is_noticed_by_keepalive(mosquitto_broker: TestBroker) -> None:
    proxy = CuttableProxy(mosquitto_broker.host, mosquitto_broker.port)
    await proxy.start()
    reasons: list[str] = []
    lost = asyncio.Event()

    async def on_disconnected(reason: str) -> None:
        reasons.append(reason)
        lost.set()

    device_settings = dataclasses.replace(
        settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a", keepalive=1),
        port=proxy.port,
        misc_interval=0.2,
    )
    try:
        async with MqttClient(device_settings, on_disconnected=on_disconnected) as device:
            proxy.pause()
            async with asyncio.timeout(10):
                await lost.wait()
            assert "keep alive" in reasons[0].lower()
            proxy.cut()
            proxy.resume()
            async with asyncio.timeout(10):
                while not device.connected:  # noqa: ASYNC110 (reconnect runs in the background)
                    await asyncio.sleep(0.05)
            await device.publish(STATUS_A, b"back")
    finally:
        await proxy.close()


async def test_a_session_taken_over_and_unsubscribed_is_subscribed_again(
    mosquitto_broker: TestBroker,
) -> None:
    """Whoever connects with a client's id and ``clean_start=false`` inherits its session and
    can unsubscribe it (Mosquitto 2.0 checks no UNSUBSCRIBE against the ACL): possible where
    clients choose their ids (the control plane's listener). The client, kicked off,
    reconnects to a session that is present but empty: it subscribes again every time, and a
    subscription still in place gets no retained message twice."""
    sessions: list[bool] = []
    reconnected = asyncio.Event()
    birth = device_topic("dev-a", DeviceTopic.CONNECTION)

    async def on_connected(session_present: bool) -> None:
        sessions.append(session_present)
        reconnected.set()

    async def take_over(*, unsubscribe: bool) -> None:
        reconnected.clear()
        thief = MqttClient(settings_for(mosquitto_broker, mosquitto_broker.operator(), "bridge-1"))
        await thief.connect()  # inherits the bridge's session; the bridge is kicked off
        if unsubscribe:
            await thief.unsubscribe([birth])  # then DISCONNECT, at once, on the same stream
        await thief.close()
        async with asyncio.timeout(10):
            await reconnected.wait()

    async with (
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.bridge(), "bridge-1"),
            on_connected=on_connected,
        ) as bridge,
        MqttClient(
            settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
        ) as device,
    ):
        await device.publish(birth, b"retained", qos=1, retain=True)
        await bridge.subscribe([(birth, 1)])
        first = await _next(bridge)
        assert first.payload == b"retained"
        first.ack()

        # A session still intact: reconnecting subscribes again, and no retained copy comes.
        await take_over(unsubscribe=False)
        assert sessions[-1] is True
        await device.publish(birth, b"live", qos=1)
        got = await _next(bridge)
        assert got.payload == b"live"  # not b"retained" again
        got.ack()

        # A session emptied by the thief: the subscription comes back.
        await take_over(unsubscribe=True)
        assert sessions[-1] is True
        await device.publish(birth, b"after the theft", qos=1)
        got = await _next(bridge)
        if got.payload in (b"retained", b"live"):  # a new subscription: the retained message
            got.ack()
            got = await _next(bridge)
        assert got.payload == b"after the theft"
        got.ack()

"""``MqttClient.publish_callback`` against a real Mosquitto: ``done`` runs exactly once, on the
loop, with None, PublishError or DisconnectedError."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from flotta.mqtt import DisconnectedError, MqttClient, MqttError, PublishDone, PublishError
from flotta.schemas.topics import DeviceTopic, device_topic
from tests.fixtures.brokers import TestBroker
from tests.mqtt.helpers import settings_for

NOT_AUTHORIZED = 0x87


class Outcomes:
    """Records each ``done`` call by publish index; fails the test on a second call."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.results: dict[int, MqttError | None] = {}
        self.repeated: list[int] = []
        self.all_in = asyncio.Event()
        self.thread_ok = True
        self._loop = asyncio.get_running_loop()

    def done(self, index: int) -> PublishDone:
        def settle(error: MqttError | None) -> None:
            try:
                self.thread_ok &= asyncio.get_running_loop() is self._loop
            except RuntimeError:
                self.thread_ok = False
            if index in self.results:
                self.repeated.append(index)
            self.results[index] = error
            if len(self.results) == self.expected:
                self.all_in.set()

        return settle

    def kinds(self) -> Counter[str]:
        return Counter(type(r).__name__ if r is not None else "ok" for r in self.results.values())


async def test_every_publish_is_settled_once_on_its_acknowledgement(
    mosquitto_broker: TestBroker,
) -> None:
    settings = settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    async with MqttClient(settings) as operator:
        outcomes = Outcomes(2000)
        for n in range(2000):
            operator.publish_callback(
                device_topic(f"d-{n}", DeviceTopic.DESIRED),
                b"state",
                retain=True,
                done=outcomes.done(n),
            )
        assert operator.publishes_in_flight == 2000  # nothing settles before the loop runs
        async with asyncio.timeout(30):
            await outcomes.all_in.wait()
        assert outcomes.kinds() == Counter(ok=2000)
        assert not outcomes.repeated
        assert outcomes.thread_ok
        assert operator.counters.published == 2000
        assert operator.publishes_in_flight == 0


async def test_a_refused_publish_settles_with_the_reason_code(mosquitto_broker: TestBroker) -> None:
    settings = settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
    async with MqttClient(settings) as device:
        outcomes = Outcomes(2)
        device.publish_callback(
            device_topic("dev-a", DeviceTopic.DESIRED),
            b"not mine",
            done=outcomes.done(0),
        )
        device.publish_callback(
            device_topic("dev-a", DeviceTopic.STATUS),
            b"mine",
            done=outcomes.done(1),
        )
        async with asyncio.timeout(5):
            await outcomes.all_in.wait()
        refused = outcomes.results[0]
        assert isinstance(refused, PublishError)
        assert refused.reason_code == NOT_AUTHORIZED
        assert outcomes.results[1] is None
        assert (device.counters.published, device.counters.publish_failures) == (1, 1)


async def test_what_cannot_be_sent_settles_before_the_call_returns(
    mosquitto_broker: TestBroker,
) -> None:
    settings = settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    client = MqttClient(settings)
    outcomes = Outcomes(4)
    client.publish_callback("flotta/x", b"", done=outcomes.done(0))
    assert isinstance(outcomes.results[0], DisconnectedError)  # never connected
    await client.connect()
    try:
        client.publish_callback("flotta/+/bad", b"", done=outcomes.done(1))
        assert isinstance(outcomes.results[1], PublishError)  # wildcard in a topic name
        client.publish_callback(
            device_topic("d-0", DeviceTopic.DESIRED),
            b"q0",
            qos=0,
            done=outcomes.done(2),
        )
        assert 2 in outcomes.results
        assert outcomes.results[2] is None
    finally:
        await client.close()
    client.publish_callback("flotta/x", b"", done=outcomes.done(3))
    assert isinstance(outcomes.results[3], DisconnectedError)  # closed
    assert client.counters.publish_failures == 3
    assert not outcomes.repeated


async def test_publishes_in_flight_settle_with_disconnected_error_when_the_connection_drops(
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
        outcomes = Outcomes(2000)
        for n in range(2000):
            operator.publish_callback(
                device_topic(f"d-{n}", DeviceTopic.DESIRED),
                b"x",
                done=outcomes.done(n),
            )
        await asyncio.to_thread(mosquitto_broker.stop)
        async with asyncio.timeout(10):
            await outcomes.all_in.wait()
        kinds = outcomes.kinds()
        assert kinds["DisconnectedError"], "the broker stopped with nothing in flight"
        assert set(kinds) <= {"ok", "DisconnectedError"}
        assert not outcomes.repeated
        assert operator.counters.published == kinds["ok"]
        assert operator.publishes_in_flight == 0


async def test_a_failing_callback_is_logged_and_the_others_still_run(
    mosquitto_broker: TestBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    async with MqttClient(settings) as operator:
        outcomes = Outcomes(1)

        def broken(error: MqttError | None) -> None:
            raise RuntimeError("callback bug")

        with caplog.at_level(logging.ERROR, logger="flotta.mqtt"):
            operator.publish_callback(device_topic("d-0", DeviceTopic.DESIRED), b"x", done=broken)
            operator.publish_callback(
                device_topic("d-1", DeviceTopic.DESIRED),
                b"x",
                done=outcomes.done(1),
            )
            async with asyncio.timeout(5):
                await outcomes.all_in.wait()
        assert outcomes.results[1] is None
        assert "publish callback failed" in caplog.text
        assert operator.counters.published == 2
        await operator.publish(device_topic("d-2", DeviceTopic.DESIRED), b"still works")


async def test_a_cancelled_publish_leaves_nothing_waiting(mosquitto_broker: TestBroker) -> None:
    settings = settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    async with MqttClient(settings) as operator:
        waiter = asyncio.create_task(
            operator.publish(device_topic("d-0", DeviceTopic.DESIRED), b"x")
        )
        await asyncio.sleep(0)
        assert operator.publishes_in_flight == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert operator.publishes_in_flight == 0
        await operator.publish(device_topic("d-1", DeviceTopic.DESIRED), b"y")

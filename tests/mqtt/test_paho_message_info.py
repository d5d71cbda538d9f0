"""LazyConditionMessageInfo is held to paho's MQTTMessageInfo: same values, same blocking API."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.enums import MQTTErrorCode

from flotta.mqtt import MqttClient
from flotta.mqtt.paho_internals import LazyConditionMessageInfo
from flotta.mqtt.paho_internals import install_lazy_message_info as install
from flotta.mqtt.paho_internals import message_info_compatible as compatible
from tests.fixtures.brokers import TestBroker
from tests.mqtt.helpers import settings_for

PAHO_INFO = LazyConditionMessageInfo.__mro__[1]


def test_this_paho_has_the_shape_the_lazy_info_relies_on() -> None:
    assert PAHO_INFO.__name__ == "MQTTMessageInfo"
    assert compatible()
    assert install()
    assert paho_client.MQTTMessageInfo is LazyConditionMessageInfo


def test_reads_as_paho_does() -> None:
    ours, theirs = LazyConditionMessageInfo(7), PAHO_INFO(7)
    assert (list(ours), ours[0], ours[1], str(ours)) == (
        list(theirs),
        theirs[0],
        theirs[1],
        str(theirs),
    )
    assert list(ours) == [MQTTErrorCode.MQTT_ERR_SUCCESS, 7]
    for info in (ours, theirs):
        assert not info.is_published()
        info._set_as_published()
        assert info.is_published()
        info.wait_for_publish(0.1)  # published: returns at once


def test_no_condition_unless_someone_waits() -> None:
    info = LazyConditionMessageInfo(1)
    info._set_as_published()
    with pytest.raises(AttributeError):
        _ = info._condition
    assert info.is_published()


def test_refuses_as_paho_does() -> None:
    for cls in (LazyConditionMessageInfo, PAHO_INFO):
        full = cls(1)
        full.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
        with pytest.raises(ValueError, match="ERR_QUEUE_SIZE"):
            full.wait_for_publish(0.1)
        lost = cls(2)
        lost.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
        with pytest.raises(RuntimeError, match="publish failed"):
            lost.is_published()


def test_a_waiting_thread_is_woken_by_the_publish() -> None:
    info = LazyConditionMessageInfo(3)
    waited: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        info.wait_for_publish(None)
        waited.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 5
    while not hasattr(info, "_condition") and time.monotonic() < deadline:
        time.sleep(0.01)  # the waiter has made the condition and waits on it
    time.sleep(0.05)
    info._set_as_published()
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(waited) == 1
    assert waited[0] < 5


def test_a_publish_a_moment_before_the_wait_is_not_missed() -> None:
    for _ in range(200):
        info = LazyConditionMessageInfo(4)
        publisher = threading.Thread(target=info._set_as_published)
        publisher.start()
        info.wait_for_publish(2.0)
        assert info.is_published()
        publisher.join()


async def test_publishes_through_the_broker_carry_no_condition(
    mosquitto_broker: TestBroker,
) -> None:
    topic = "flotta/devices/dev-a/desired"
    settings = settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator")
    async with MqttClient(settings) as operator:
        info = operator._paho.publish(topic, b"{}", qos=1, retain=False)
        assert isinstance(info, LazyConditionMessageInfo)
        await operator.publish(topic, b"{}", qos=1)  # acknowledged: the one before it too
        assert info.is_published()

"""SharedTableProperties is held to paho's own Properties: same packing, unpacking and checks."""

from __future__ import annotations

import asyncio
from typing import Any

import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from flotta.mqtt import MqttClient
from flotta.mqtt.paho_internals import SharedTableProperties
from flotta.mqtt.paho_internals import install_shared_table_properties as install
from flotta.mqtt.paho_internals import properties_compatible as compatible
from tests.fixtures.brokers import TestBroker
from tests.mqtt.helpers import settings_for

REFERENCE = Properties(PacketTypes.PUBLISH)
VALUES_BY_TYPE = {
    "Byte": 1,
    "Two Byte Integer": 513,
    "Four Byte Integer": 70_000,
    "Variable Byte Integer": 300,
    "Binary Data": b"\x00\x01corr",
    "UTF-8 Encoded String": "flotta/devices/dev-a/status",
    "UTF-8 String Pair": ("stream", "s-1"),
}


def _applicable() -> list[tuple[int, str, object]]:
    """Every (packet type, property name, a valid value) paho allows."""
    cases = []
    for name, identifier in REFERENCE.names.items():
        type_index, packet_types = REFERENCE.properties[identifier]
        value = VALUES_BY_TYPE[REFERENCE.types[type_index]]
        for packet_type in packet_types:
            cases.append((packet_type, name.replace(" ", ""), value))
    return cases


CASES = _applicable()


def test_this_paho_has_the_shape_the_shared_tables_rely_on() -> None:
    assert compatible()
    assert len(CASES) > 40


@pytest.mark.parametrize(("packet_type", "name", "value"), CASES)
def test_packs_and_unpacks_as_paho_does(packet_type: int, name: str, value: object) -> None:
    ours, theirs = SharedTableProperties(packet_type), Properties(packet_type)
    setattr(ours, name, value)
    setattr(theirs, name, value)
    packed = theirs.pack()
    assert ours.pack() == packed
    assert str(ours) == str(theirs)
    back_ours, back_theirs = SharedTableProperties(packet_type), Properties(packet_type)
    assert back_ours.unpack(packed)[1] == back_theirs.unpack(packed)[1] == len(packed)
    assert back_ours.json() == back_theirs.json() == theirs.json()


def test_refuses_what_paho_refuses() -> None:
    for cls in (SharedTableProperties, Properties):
        publish = cls(PacketTypes.PUBLISH)
        with pytest.raises(MQTTException, match="Property name must be one of"):
            publish.NotAProperty = 1
        with pytest.raises(MQTTException, match="does not apply to packet type"):
            publish.SessionExpiryInterval = 10
        connect = cls(PacketTypes.CONNECT)
        with pytest.raises(MQTTException, match="1-65535"):
            connect.ReceiveMaximum = 0


def test_instances_share_tables_but_not_values() -> None:
    first, second = (
        SharedTableProperties(PacketTypes.PUBLISH),
        SharedTableProperties(PacketTypes.PUBLISH),
    )
    first.UserProperty = ("a", "1")
    first.UserProperty = ("b", "2")
    assert first.UserProperty == [("a", "1"), ("b", "2")]  # type: ignore[attr-defined]  # paho sets property attributes dynamically
    assert not hasattr(second, "UserProperty")
    assert first.names is second.names
    assert first.properties is second.properties


async def test_paho_decodes_received_properties_with_shared_tables(
    mosquitto_broker: TestBroker,
) -> None:
    assert install()
    assert paho_client.Properties is SharedTableProperties  # type: ignore[attr-defined]  # re-bound by install()
    topic = "flotta/devices/dev-a/desired"
    operator_creds, device_creds = mosquitto_broker.operator(), mosquitto_broker.device("dev-a")
    async with (
        MqttClient(settings_for(mosquitto_broker, operator_creds, "operator")) as operator,
        MqttClient(settings_for(mosquitto_broker, device_creds, "dev-a")) as device,
    ):
        await device.subscribe([(topic, 1)])
        sent = Properties(PacketTypes.PUBLISH)
        sent.UserProperty = ("stream", "s-1")
        sent.MessageExpiryInterval = 3600
        await operator.publish(topic, b"{}", qos=1, properties=sent)
        async with asyncio.timeout(10):
            message = await anext(aiter(device.messages()))
        assert isinstance(message.properties, SharedTableProperties)
        received: Any = message.properties  # paho sets property attributes dynamically
        assert received.UserProperty == [("stream", "s-1")]
        assert 0 < received.MessageExpiryInterval <= 3600

"""The fast PUBLISH reader agrees with paho's decoder on every packet it takes, and leaves the
rest to paho."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.client import MQTTv5
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from flotta.mqtt.publish_parsing import read_publish


def publish_packet(topic: bytes, mid: int, qos: int, payload: bytes, props: Properties) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    return body + props.pack() + payload  # type: ignore[no-untyped-call]


def properties(user: list[tuple[str, str]], expiry: int | None) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if user:
        props.UserProperty = user
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    return props


# MQTT strings never hold U+0000 (paho refuses them; the broker never forwards them)
UTF8 = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    topic=st.text(min_size=1, max_size=40).map(str.encode),
    mid=st.integers(1, 65535),
    qos=st.integers(0, 1),
    retain=st.booleans(),
    dup=st.booleans(),
    payload=st.binary(max_size=300),
    user=st.lists(st.tuples(UTF8, UTF8), max_size=4),
    expiry=st.none() | st.integers(0, 2**32 - 1),
)
def test_same_as_paho(
    topic: bytes,
    mid: int,
    qos: int,
    retain: bool,
    dup: bool,
    payload: bytes,
    user: list[tuple[str, str]],
    expiry: int | None,
) -> None:
    packet = publish_packet(topic, mid, qos, payload, properties(user, expiry))
    command = 0x30 | (dup << 3) | (qos << 1) | retain
    ours = read_publish(command, bytearray(packet))
    theirs = _packet.decode_publish(command, packet, MQTTv5)
    assert ours is not None
    assert ours.topic.encode() == theirs.topic
    assert (ours.qos, ours.retain, ours.duplicate) == (theirs.qos, theirs.retain, theirs.dup)
    assert ours.mid == (theirs.mid if qos else 0)
    assert ours.payload == theirs.payload
    assert type(ours.payload) is bytes


@given(packet=st.binary(max_size=40), command=st.integers(0x30, 0x3F))
def test_never_raises_and_leaves_what_it_does_not_take(packet: bytes, command: int) -> None:
    result = read_publish(command, packet)
    if result is not None:
        assert (command & 0x06) >> 1 < 2
        assert result.topic


def test_what_is_left_to_paho() -> None:
    assert read_publish(0x34, b"\x00\x01a\x00\x01\x00") is None  # QoS 2
    assert read_publish(0x32, b"\x00\x00\x00\x01\x00") is None  # empty topic (alias)
    assert read_publish(0x30, b"\x00\x01\xff\x00") is None  # topic not UTF-8
    assert read_publish(0x30, b"\x00\x05ab") is None  # topic past the end
    assert read_publish(0x30, b"\x00\x01a\xff\xff\xff\xff\x01") is None  # 5-byte length

"""Reading an incoming MQTT v5 PUBLISH packet without paho: the fast receive path. Pure.

For every message it receives paho builds an ``MQTTMessage`` (with a ``threading.Condition``),
a ``Properties`` object and a walk of its topic matcher; a consumer that needs neither the
properties nor per-topic callbacks (the bridge, at 10-16k messages a second per replica) needs
six values. A packet this reader does not take (QoS 2, a topic that is not UTF-8, an empty
topic (a topic alias), a malformed length) returns None and is left to paho, which handles
every case. ``tests/mqtt/test_publish_parsing.py`` holds it to paho's own decoder.
"""

from __future__ import annotations

from typing import NamedTuple


class PublishFields(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int  # 0 for QoS 0
    duplicate: bool


def read_publish(command: int, packet: bytes | bytearray) -> PublishFields | None:
    """The PUBLISH after its fixed header: ``command`` is the first byte, ``packet`` the rest
    (variable header, properties and payload). The properties are skipped, not decoded."""
    qos = (command & 0x06) >> 1
    if qos > 1 or len(packet) < 2:
        return None
    end = 2 + ((packet[0] << 8) | packet[1])
    if end == 2 or end > len(packet):
        return None
    try:
        topic = packet[2:end].decode()
    except UnicodeDecodeError:
        return None
    mid = 0
    if qos:
        if end + 2 > len(packet):
            return None
        mid = (packet[end] << 8) | packet[end + 1]
        end += 2
    # properties: a variable byte integer (1 to 4 bytes) with their length, then themselves
    length = 0
    shift = 0
    for _ in range(4):
        if end >= len(packet):
            return None
        byte = packet[end]
        end += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    else:
        return None
    end += length
    if end > len(packet):
        return None
    return PublishFields(
        topic, bytes(packet[end:]), qos, bool(command & 0x01), mid, bool(command & 0x08)
    )

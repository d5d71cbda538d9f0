"""Reading an incoming MQTT v5 PUBLISH packet, the bridge's hottest path. Pure.

paho builds an ``MQTTMessage`` (with a ``threading.Condition``), a ``Properties`` object and
a topic-matcher walk for every message it receives; the bridge needs five values. A packet
this reader does not take (QoS 2, a topic that is not UTF-8, an empty topic, a malformed
length) returns None and is left to paho, which handles every case.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PublishPacket:
    topic: str
    mid: int
    qos: int
    payload: bytes
    retain: bool = False


def read_publish(command: int, packet: bytes | bytearray) -> PublishPacket | None:
    """The PUBLISH after its fixed header: ``command`` is the first byte, ``packet`` the rest
    (variable header and payload)."""
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
    return PublishPacket(topic, mid, qos, bytes(packet[end:]), bool(command & 0x01))

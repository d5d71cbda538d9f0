"""paho's ``Client`` with per-packet costs taken out of its hot paths.

On every PUBACK paho walks all of its unacknowledged messages looking for one queued behind the
in-flight window (``Client._update_inflight``). The operator keeps up to 256 publishes in flight
and nothing queued behind them, so each of a fan-out's 10,000 acknowledgements walked 256
messages for nothing: 11 % of the operator's CPU in a fan-out (py-spy, 2026-12-03). Every
message paho holds is either counted in flight or queued; when there are no more messages than
are in flight, none is queued and the walk is skipped. Otherwise paho's own walk runs.

paho writes each queued packet with its own ``send``: over TLS, a record and a system call per
packet, and as many reads for the broker. A device answering a desired state queues its PUBACK
and its status together; the operator queues hundreds of publishes between two turns of the
loop. ``_packet_write`` joins the packets at the head of the queue that need nothing done once
written (all but QoS 0 publishes and DISCONNECT, which paho's own loop handles) into one
``send`` of at most ``COALESCE_BYTES``; from the first packet that does need it on, paho's own
loop writes one by one. A partial write leaves the rest queued, as paho does.

``tests/mqtt/test_paho_client.py`` holds both to paho's behaviour.

``use_socket`` hands paho a socket connected on the event loop (``flotta.mqtt.tlsconnect``):
paho's own ``_create_socket`` connects and handshakes with blocking calls. Every connection
in ``tests/mqtt`` goes through it (``test_tls_connect.py`` for the socket's own cases).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import LogLevel, MQTTErrorCode

COALESCE_BYTES = 64 * 1024  # joined into one send at most (four TLS records)
_PUBLISH = 0x30
_DISCONNECT = 0xE0


def _written_alone(packet: Any) -> bool:
    """paho acts once such a packet is written (QoS 0 on_publish, DISCONNECT closing)."""
    command = packet["command"] & 0xF0
    return bool(command == _DISCONNECT or (command == _PUBLISH and packet["qos"] == 0))


class WindowedClient(paho.Client):
    _logged_levels: frozenset[int] | None = None  # None: every level, as paho does
    _given_socket: Any = None

    def use_socket(self, sock: Any) -> None:
        """The next ``connect()`` takes this connected (and TLS-handshaken) socket instead of
        opening one with paho's blocking calls (None: forget one not taken)."""
        self._given_socket = sock

    def _create_socket(self) -> Any:
        sock, self._given_socket = self._given_socket, None
        return sock if sock is not None else super()._create_socket()

    def log_only(self, levels: frozenset[int]) -> None:
        """Drop paho's log lines of other levels before they are formatted or logged.

        paho logs a debug line for every packet sent and received; with a logger that discards
        them, the calls alone were 5 % of the simulator's CPU in a fan-out."""
        self._logged_levels = levels

    def _easy_log(self, level: LogLevel, fmt: str, *args: Any) -> None:
        levels = self._logged_levels
        if levels is None or level in levels:
            super()._easy_log(level, fmt, *args)

    def _update_inflight(self) -> MQTTErrorCode:
        if len(self._out_messages) <= self._inflight_messages:
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # nothing is queued behind the window
        return super()._update_inflight()

    def _packet_write(self) -> MQTTErrorCode:
        queue = self._out_packet
        while len(queue) > 1 and not _written_alone(queue[0]):
            rc, finished = self._write_joined()
            if not finished:
                return rc
        return super()._packet_write()  # the last packet, or from a packet written alone on

    def _write_joined(self) -> tuple[MQTTErrorCode, bool]:
        """One send for the packets at the head that need nothing done once written."""
        queue = self._out_packet
        batch: list[Any] = []
        size = 0
        for packet in queue:
            if size >= COALESCE_BYTES or _written_alone(packet):
                break
            batch.append(packet)
            size += packet["to_process"]
        data = b"".join(memoryview(p["packet"])[p["pos"] :] for p in batch)
        try:
            written = self._sock_send(data)
        except (AttributeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS, False
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN, False
        except OSError as err:
            self._easy_log(paho.MQTT_LOG_ERR, "failed to send on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST, False
        for packet in batch:
            taken = min(written, packet["to_process"])
            packet["to_process"] -= taken
            packet["pos"] += taken
            written -= taken
            if packet["to_process"] > 0:
                return MQTTErrorCode.MQTT_ERR_AGAIN, False  # the kernel took only part
            queue.popleft()
        return MQTTErrorCode.MQTT_ERR_SUCCESS, True

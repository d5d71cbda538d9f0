"""Errors of the MQTT client.

MqttError                 anything the MQTT client raises
├── ConnectError          no session: TCP/TLS failed or the broker refused CONNECT
├── PublishError          the broker refused a PUBLISH (v5 reason code >= 0x80)
├── SubscribeError        the broker refused one or more subscriptions in a SUBACK
└── DisconnectedError     not connected, or the connection dropped before the answer
"""

from __future__ import annotations

from collections.abc import Sequence


class MqttError(Exception):
    """Base of every error raised by ``flotta.mqtt``."""


class ConnectError(MqttError):
    """The connection could not be established; ``reason_code`` is the CONNACK code if any."""

    def __init__(self, host: str, port: int, reason: str, reason_code: int | None = None) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        self.reason_code = reason_code
        code = f" (reason code 0x{reason_code:02X})" if reason_code is not None else ""
        super().__init__(f"cannot connect to MQTT broker {host}:{port}: {reason}{code}")


class PublishError(MqttError):
    """The broker (or paho, for a bad topic or payload) refused a publish."""

    def __init__(self, topic: str, reason: str, reason_code: int | None = None) -> None:
        self.topic = topic
        self.reason = reason
        self.reason_code = reason_code
        code = f" (reason code 0x{reason_code:02X})" if reason_code is not None else ""
        super().__init__(f"publish to {topic!r} refused: {reason}{code}")


class SubscribeError(MqttError):
    """Some filters of a SUBSCRIBE were refused: ``refused`` holds (filter, reason, code)."""

    def __init__(self, refused: Sequence[tuple[str, str, int | None]]) -> None:
        self.refused = tuple(refused)
        parts = ", ".join(
            f"{topic_filter!r}: {reason}" + (f" (0x{code:02X})" if code is not None else "")
            for topic_filter, reason, code in self.refused
        )
        super().__init__(f"subscription refused: {parts}")

    @property
    def reason_codes(self) -> tuple[int | None, ...]:
        return tuple(code for _, _, code in self.refused)


class DisconnectedError(MqttError):
    """An operation needs a connection that is not there (any more).

    For a publish whose connection dropped before the acknowledgement the outcome is
    unknown: paho resends it in the resumed session, so it may still arrive (at least once).
    """

    def __init__(self, operation: str, detail: str = "") -> None:
        self.operation = operation
        self.detail = detail
        suffix = f": {detail}" if detail else ""
        super().__init__(f"{operation} failed: not connected to the MQTT broker{suffix}")

"""Errors of the MQTT client.

MqttError
├── ConnectError        the broker refused the connection, or it could not be made
├── DisconnectedError   not connected, or the connection dropped before the answer
├── PublishError        the broker refused a publish (v5 reason code >= 0x80)
└── SubscribeError      the broker refused a subscription
"""

from __future__ import annotations


class MqttError(Exception):
    """Anything the MQTT client could not do."""


class ConnectError(MqttError):
    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"cannot connect to {target}: {reason}")
        self.reason = reason


class DisconnectedError(MqttError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: not connected to the broker")


class PublishError(MqttError):
    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"publish to {topic!r} refused: {reason}")
        self.topic = topic
        self.reason = reason


class SubscribeError(MqttError):
    def __init__(self, refused: dict[str, str]) -> None:
        listed = ", ".join(f"{topic!r} ({reason})" for topic, reason in refused.items())
        super().__init__(f"subscription refused: {listed}")
        self.refused = refused

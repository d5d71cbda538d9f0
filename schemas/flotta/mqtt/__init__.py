"""``flotta.mqtt``: the asyncio MQTT v5 client used by the operator, the bridge and the agent."""

from flotta.mqtt.backoff import Backoff, BackoffPolicy
from flotta.mqtt.client import MqttClient, MqttCounters
from flotta.mqtt.errors import (
    ConnectError,
    DisconnectedError,
    MqttError,
    PublishError,
    SubscribeError,
)
from flotta.mqtt.messages import Message
from flotta.mqtt.settings import MqttSettings, TlsSettings, WillSettings

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "ConnectError",
    "DisconnectedError",
    "Message",
    "MqttClient",
    "MqttCounters",
    "MqttError",
    "MqttSettings",
    "PublishError",
    "SubscribeError",
    "TlsSettings",
    "WillSettings",
]

"""The project's asyncio MQTT v5 client over paho-mqtt, shared by operator, bridge and agent.

paho runs without its network thread: its socket is handed to the event loop. Publishes
resolve on the broker's acknowledgement, subscriptions on SUBACK, and incoming messages wait in
a bounded queue until the consumer acknowledges them.
"""

from flotta.mqtt.backoff import Backoff
from flotta.mqtt.client import Message, MqttClient
from flotta.mqtt.errors import (
    ConnectError,
    DisconnectedError,
    MqttError,
    PublishError,
    SubscribeError,
)
from flotta.mqtt.settings import MqttSettings, TlsFiles, Will

__all__ = [
    "Backoff",
    "ConnectError",
    "DisconnectedError",
    "Message",
    "MqttClient",
    "MqttError",
    "MqttSettings",
    "PublishError",
    "SubscribeError",
    "TlsFiles",
    "Will",
]

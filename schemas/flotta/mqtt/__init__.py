"""``flotta.mqtt``: the asyncio MQTT v5 client used by the operator, the bridge and the agent.

Only paho-mqtt and the standard library. Typical use::

    settings = MqttSettings(host, 8883, "dev-a", TlsFiles(ca, cert, key))

    async def on_connected(session_present: bool) -> None:
        await client.publish(connection_topic, b"online", retain=True)  # birth message

    async with MqttClient(settings, on_connected=on_connected, manual_ack=True) as client:
        await client.subscribe([(desired_topic, 1)])
        async for message in client.messages():
            await handle(message)
            message.ack()  # the broker forgets the message only now

Many publishes at once without a future each (the operator's fan-out)::

    client.publish_callback(topic, payload, qos=1, retain=True, done=on_done)
    # on_done(None) on PUBACK, on_done(PublishError | DisconnectedError) otherwise

Delivery is at least once: a message handled but not acked when the connection drops comes
again (``duplicate=True``) after the reconnect.
"""

from flotta.backoff import Backoff, BackoffPolicy
from flotta.mqtt.client import (
    MqttClient,
    MqttCounters,
    PublishDone,
    RetainHandling,
    settle_future,
)
from flotta.mqtt.errors import (
    ConnectError,
    DisconnectedError,
    MqttError,
    PublishError,
    SubscribeError,
)
from flotta.mqtt.messages import Message
from flotta.mqtt.settings import MqttSettings, TlsFiles, Will

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
    "PublishDone",
    "PublishError",
    "RetainHandling",
    "SubscribeError",
    "TlsFiles",
    "Will",
    "settle_future",
]

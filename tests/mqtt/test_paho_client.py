"""WindowedClient: publishes beyond the in-flight window wait in paho's queue and all go out;
packets queued together are written together, byte for byte what paho writes."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import paho.mqtt.client as paho
import pytest
from paho.mqtt.client import _ConnectionState  # type: ignore[attr-defined]  # private: the test reads the state
from paho.mqtt.enums import CallbackAPIVersion

from flotta.mqtt import MqttClient
from flotta.mqtt.paho_internals import WindowedClient
from flotta.schemas.topics import DeviceTopic, device_topic
from tests.fixtures.brokers import TestBroker
from tests.mqtt.helpers import settings_for
from tests.mqtt.test_publish_callback import Outcomes


@pytest.mark.parametrize(("window", "burst"), [(3, 200), (500, 200)])
async def test_every_publish_goes_out_whether_or_not_it_waited_behind_the_window(
    mosquitto_broker: TestBroker, window: int, burst: int
) -> None:
    settings = settings_for(
        mosquitto_broker, mosquitto_broker.operator(), "operator", max_inflight=window
    )
    async with MqttClient(settings) as operator:
        paho = operator._paho
        assert isinstance(paho, WindowedClient)
        outcomes = Outcomes(burst)
        for n in range(burst):
            operator.publish_callback(
                device_topic(f"d-{n}", DeviceTopic.DESIRED),
                b"state",
                retain=True,
                done=outcomes.done(n),
            )
        queued = len(paho._out_messages) - paho._inflight_messages
        assert queued == max(0, burst - window)  # paho holds back what exceeds the window
        async with asyncio.timeout(30):
            await outcomes.all_in.wait()
        assert outcomes.kinds() == Counter(ok=burst)
        assert not outcomes.repeated
        assert (len(paho._out_messages), paho._inflight_messages) == (0, 0)


async def test_packets_queued_together_go_out_in_few_sends_and_in_order(
    mosquitto_broker: TestBroker,
) -> None:
    """Publishes queued in one turn of the loop reach a subscriber complete and in order; the
    QoS 1 ones are joined into far fewer sends than packets, the QoS 0 ones behind them (paho
    acts once each is written) go one by one."""
    # A window as wide as the burst: the broker would otherwise hold QoS 1 messages back behind
    # the subscriber's window and let QoS 0 ones overtake them.
    device = MqttClient(
        settings_for(
            mosquitto_broker,
            mosquitto_broker.device("d-0"),
            "d-0",
            receive_maximum=1000,
            incoming_queue=1000,
        )
    )
    operator = MqttClient(
        settings_for(mosquitto_broker, mosquitto_broker.operator(), "operator", max_inflight=500)
    )
    topic = device_topic("d-0", DeviceTopic.DESIRED)
    count = 300
    async with device, operator:
        await device.subscribe([(topic, 1)])
        paho = operator._paho
        sends = 0
        send = paho._sock_send

        def counting_send(data: bytes | bytearray) -> int:
            nonlocal sends
            sends += 1
            return send(data)

        paho._sock_send = counting_send  # type: ignore[method-assign,assignment]
        outcomes = Outcomes(count)
        for n in range(count):
            operator.publish_callback(
                topic, f"{n}".encode(), qos=0 if n >= count - 5 else 1, done=outcomes.done(n)
            )
        received: list[bytes] = []
        async with asyncio.timeout(30):
            await outcomes.all_in.wait()
            async for message in device.messages():
                received.append(message.payload)
                if len(received) == count:
                    break
        assert outcomes.kinds() == Counter(ok=count)
        assert received == [f"{n}".encode() for n in range(count)]
        assert sends <= 10  # 295 QoS 1 publishes joined, then 5 QoS 0 ones alone


class ChunkedSocket:
    """Takes at most ``chunk`` bytes per send and refuses every ``refuse_every``-th send, as a
    non-blocking socket with a full buffer does; records what it took."""

    def __init__(self, chunk: int, refuse_every: int = 0) -> None:
        self.chunk = chunk
        self.refuse_every = refuse_every
        self.calls = 0
        self.taken = bytearray()

    def send(self, data: bytes | bytearray) -> int:
        self.calls += 1
        if self.refuse_every and self.calls % self.refuse_every == 0:
            raise BlockingIOError
        part = bytes(data[: self.chunk])
        self.taken += part
        return len(part)

    def close(self) -> None:
        pass


def queued_client(cls: type[paho.Client]) -> paho.Client:
    client = cls(CallbackAPIVersion.VERSION2, client_id="c", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.on_socket_register_write = lambda *args: None  # queue only: no write on publish
    client._state = _ConnectionState.MQTT_CS_CONNECTED
    for n in range(40):
        client.publish(f"t/{n}", b"x" * (n * 37 % 300), qos=0 if n % 9 == 8 else 1)
    client.disconnect()
    return client


@pytest.mark.parametrize(("chunk", "refuse_every"), [(10_000_000, 0), (100, 0), (77, 3), (5, 2)])
def test_partial_and_refused_writes_send_the_same_bytes_as_paho(
    chunk: int, refuse_every: int
) -> None:
    streams = []
    for cls in (paho.Client, WindowedClient):
        client = queued_client(cls)
        sock = ChunkedSocket(chunk, refuse_every)
        client._sock = sock  # type: ignore[assignment]
        for _ in range(100_000):
            if not client._out_packet or client._sock is None:
                break
            client._packet_write()
        streams.append((bytes(sock.taken), len(client._out_packet)))
    assert streams[0] == streams[1]
    assert streams[1][1] == 0


def test_log_only_drops_other_levels_before_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    client = WindowedClient(CallbackAPIVersion.VERSION2, client_id="c", protocol=paho.MQTTv5)
    logger = logging.getLogger("test.paho.levels")
    client.enable_logger(logger)
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        client._easy_log(paho.MQTT_LOG_DEBUG, "sending %s", "PUBACK")
        client.log_only(frozenset({paho.MQTT_LOG_ERR}))
        client._easy_log(paho.MQTT_LOG_DEBUG, "sending %s", "PUBLISH")
        client._easy_log(paho.MQTT_LOG_ERR, "failed to %s", "send")
    assert [r.getMessage() for r in caplog.records] == ["sending PUBACK", "failed to send"]

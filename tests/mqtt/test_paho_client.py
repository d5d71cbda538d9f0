"""WindowedClient: publishes beyond the in-flight window wait in paho's queue and all go out."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from flotta.mqtt import MqttClient
from flotta.mqtt.pahoclient import WindowedClient
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

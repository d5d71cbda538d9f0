"""The shared-subscription group hijack, against a real Mosquitto: a member that joins the
bridge's group with the bootstrap certificate takes a share of device messages, which the
broker then drops (its ACL forbids the member to read them). A secret group name keeps the
group to the bridge replicas."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from flotta.bridge.share_group import WELL_KNOWN_GROUP, is_guessable, new_group
from flotta.schemas.topics import TELEMETRY_KINDS, DeviceTopic, device_topic, shared_filter
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.support import create_device
from tests.bridge.test_integration import eventually, heartbeat
from tests.fixtures.mqtt_probe import MqttProbe

HEARTBEATS = 30


async def status_messages_reaching_the_bridge(
    env: BridgeEnv, start_bridge: StartBridge, group: str, device: str, *, expect: int
) -> int:
    """How many of the device's heartbeats the bridge took in, once ``expect`` of them did or
    a few seconds passed."""
    create_device(env.kube.api, NAMESPACE, device)
    settings = env.settings
    filters = tuple(shared_filter(group, kind) for kind in TELEMETRY_KINDS)
    bridge = await start_bridge(
        mqtt=replace(settings.mqtt, filters=filters, client_id=f"bridge-{device}")
    )
    rogue = MqttProbe(
        env.broker.host, env.broker.port, env.broker.bootstrap("leaked"), f"rogue-{device}"
    )
    await asyncio.to_thread(rogue.connect)
    publisher = await asyncio.to_thread(env.device, device)
    try:
        # the rogue joins the group under the name an attacker would guess
        codes = await asyncio.to_thread(
            rogue.subscribe, shared_filter(WELL_KNOWN_GROUP, DeviceTopic.STATUS)
        )
        assert codes == [1]  # Mosquitto 2.0 grants any SUBSCRIBE
        for _ in range(HEARTBEATS):
            await asyncio.to_thread(
                publisher.publish, device_topic(device, DeviceTopic.STATUS), heartbeat()
            )
        counter = bridge.metrics.messages_in.labels("status")
        with contextlib.suppress(AssertionError):
            await eventually(lambda: counter._value.get() >= expect, within=5)
        return int(counter._value.get())
    finally:
        await asyncio.to_thread(publisher.close)
        await asyncio.to_thread(rogue.close)


async def test_a_known_group_loses_messages_to_a_rogue_member(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    received = await status_messages_reaching_the_bridge(
        bridge_env, start_bridge, WELL_KNOWN_GROUP, "dev-known", expect=HEARTBEATS
    )
    assert received < HEARTBEATS  # the attack, as it works with a guessable group


async def test_a_secret_group_gets_every_message(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    group = new_group()
    assert not is_guessable(group)
    received = await status_messages_reaching_the_bridge(
        bridge_env, start_bridge, group, "dev-secret", expect=HEARTBEATS
    )
    assert received == HEARTBEATS

"""Persistent sessions and shared subscriptions: nothing is lost while a bridge is down or
while NATS is down (a message is acknowledged only after JetStream stored it), and
replicas split the messages between them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from flotta.bridge.app import Bridge
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.telemetry import MetricSample, MetricsBatch
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.support import Publisher, create_device
from tests.bridge.test_integration import eventually, stream_messages
from tests.bridge.test_liveness import connection_messages


def batch(sequence: int) -> bytes:
    sample = MetricSample(name="temp", value=float(sequence), timestamp_ms=sequence)
    return encode(MetricsBatch(stream="s", sequence=sequence, samples=[sample]))


async def publish_batches(device: Publisher, device_id: str, sequences: range) -> None:
    topic = device_topic(device_id, DeviceTopic.METRICS)

    def send() -> None:
        infos = [device.publish(topic, batch(n), wait=False) for n in sequences]
        for info in infos:
            info.wait_for_publish(10)

    await asyncio.to_thread(send)


async def telemetry_count(env: BridgeEnv) -> int:
    return await stream_messages(env, "FLOTTA_TELEMETRY")


async def wait_count(env: BridgeEnv, expected: int, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    count = -1
    while asyncio.get_running_loop().time() < deadline:
        count = await telemetry_count(env)
        if count == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"FLOTTA_TELEMETRY has {count} messages, expected {expected}")


async def test_messages_wait_in_the_session_while_the_bridge_is_down(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-6")
    first = await start_bridge(client_id="bridge-p")
    await first.close()
    device = await asyncio.to_thread(bridge_env.device, "dev-6")
    try:
        await publish_batches(device, "dev-6", range(1, 31))
        await start_bridge(client_id="bridge-p")
        await wait_count(bridge_env, 30)
    finally:
        await asyncio.to_thread(device.close)


@pytest.mark.leaves_tasks(
    "nats-py 2.16 closing while disconnected fails flushing into the lost connection before it "
    "cancels its subscriptions' tasks (the bridge logs it and goes on closing)"
)
async def test_unacknowledged_while_nats_is_down_then_redelivered(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-7")
    bridge = await start_bridge(client_id="bridge-n")
    await wait_count(bridge_env, 0)
    bridge_env.nats.stop()
    device = await asyncio.to_thread(bridge_env.device, "dev-7")
    try:
        await publish_batches(device, "dev-7", range(1, 11))
        await eventually(lambda: bridge.metrics.messages_in.labels("metrics")._value.get() == 10)
        assert bridge.ingest is not None
        assert bridge.ingest.acked == 0  # nothing acknowledged without JetStream
        await bridge.close()
        bridge_env.nats.start()
        await start_bridge(client_id="bridge-n")
        await wait_count(bridge_env, 10)
    finally:
        await asyncio.to_thread(device.close)


async def test_replicas_split_the_fleet_and_one_may_die(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-8")
    a = await start_bridge(client_id="bridge-a")
    b = await start_bridge(client_id="bridge-b")
    device = await asyncio.to_thread(bridge_env.device, "dev-8")
    try:
        await publish_batches(device, "dev-8", range(1, 61))
        await wait_count(bridge_env, 60)
        assert a.ingest is not None
        assert b.ingest is not None
        assert a.ingest.acked > 0
        assert b.ingest.acked > 0
        assert a.ingest.acked + b.ingest.acked == 60

        # Replica a dies. Mosquitto 2.0 keeps a's persistent session in the group: its share of
        # new messages waits in that session (nothing is lost) until a comes back.
        await a.close()
        await publish_batches(device, "dev-8", range(61, 101))
        a_acked = a.ingest.acked
        await eventually(lambda: b.ingest is not None and b.ingest.acked > 60 - a_acked)
        await asyncio.sleep(0.5)
        assert 60 < await telemetry_count(bridge_env) < 100
        again: Bridge = await start_bridge(client_id="bridge-a")
        await wait_count(bridge_env, 100)
        assert again.ingest is not None
    finally:
        await asyncio.to_thread(device.close)


async def test_no_retained_message_is_sent_on_subscribing_again_after_a_broker_restart(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    """Mosquitto 2.0 sends a shared subscription the retained messages; every broker restart
    (the bridge subscribes again) would bring every device's birth or will once more."""

    async def announce(name: str, *, retain: bool) -> None:
        device = await asyncio.to_thread(bridge_env.device, name)
        birth = ConnectionState(state="online", time=datetime.now(UTC), applied_version="v1")
        topic = device_topic(name, DeviceTopic.CONNECTION)
        try:
            info = device.client.publish(topic, encode(birth), qos=1, retain=retain)
            await asyncio.to_thread(info.wait_for_publish, 10)
        finally:
            await asyncio.to_thread(device.close)

    for name in ("dev-r1", "dev-r2", "dev-r3"):
        create_device(bridge_env.kube.api, NAMESPACE, name)
        await announce(name, retain=True)
    bridge = await start_bridge(client_id="bridge-r")
    assert bridge.intake is not None
    for _ in range(2):
        await asyncio.sleep(1.0)
        assert connection_messages(bridge) == 0
        await asyncio.to_thread(bridge_env.broker.restart)
        await asyncio.wait_for(bridge.intake.wait_ready(), 30)
    await asyncio.sleep(1.0)
    assert connection_messages(bridge) == 0
    assert bridge.intake.connects == 3
    await announce("dev-r1", retain=False)  # the subscription works: a live birth arrives
    await eventually(lambda: connection_messages(bridge) == 1)

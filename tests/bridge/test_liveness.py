"""Online and offline: birth and will on the connection topic, and missed heartbeats."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from flotta.bridge.app import Bridge
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.connection import ConnectionState
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.support import Publisher, create_device
from tests.bridge.test_integration import eventually, heartbeat, status_of


def online_reason(env: BridgeEnv, name: str) -> tuple[str | None, str | None]:
    status = status_of(env, name)
    for condition in status.get("conditions", []):
        if condition["type"] == "Online":
            return status.get("phase"), condition["reason"]
    return status.get("phase"), None


async def test_birth_and_will(bridge_env: BridgeEnv, start_bridge: StartBridge) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-4")
    await start_bridge(offline_grace=1.0)
    topic = device_topic("dev-4", DeviceTopic.CONNECTION)
    will = encode(
        ConnectionState(state="offline", time=datetime.now(UTC), reason="connection lost")
    )
    device = await asyncio.to_thread(bridge_env.device, "dev-4", (topic, will))
    birth = encode(ConnectionState(state="online", time=datetime.now(UTC), applied_version="v1"))
    await asyncio.to_thread(device.publish, topic, birth)
    await eventually(lambda: online_reason(bridge_env, "dev-4") == ("Online", "DeviceOnline"))
    await asyncio.to_thread(device.drop)
    started = asyncio.get_running_loop().time()
    await eventually(lambda: online_reason(bridge_env, "dev-4") == ("Offline", "Disconnected"))
    assert asyncio.get_running_loop().time() - started >= 1.0  # not before the grace


async def test_missed_heartbeats(bridge_env: BridgeEnv, start_bridge: StartBridge) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-5", period=1)
    await start_bridge()
    device = await asyncio.to_thread(bridge_env.device, "dev-5")
    try:
        topic = device_topic("dev-5", DeviceTopic.STATUS)
        await asyncio.to_thread(device.publish, topic, heartbeat(period=1))
        await eventually(lambda: online_reason(bridge_env, "dev-5")[0] == "Online")
        started = asyncio.get_running_loop().time()
        await eventually(
            lambda: online_reason(bridge_env, "dev-5") == ("Offline", "HeartbeatsMissed"),
            within=8,
        )
        assert asyncio.get_running_loop().time() - started >= 2.0  # three periods, not one
        await asyncio.to_thread(device.publish, topic, heartbeat(period=1))
        await eventually(lambda: online_reason(bridge_env, "dev-5") == ("Online", "DeviceOnline"))
    finally:
        await asyncio.to_thread(device.close)


def without_claim(report: bytes) -> bytes:
    """A heartbeat that does not say its period (the field is optional on the wire)."""
    document = json.loads(report)
    del document["heartbeatPeriodSeconds"]
    return json.dumps(document).encode()


async def test_missed_heartbeats_count_in_the_period_the_device_was_told(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    """The operator told both devices 1 s (the EdgeDevice status records it; the spec's 60 s
    is overridden by their set). One leaves the period out of its heartbeats, one claims
    600 s: both are Offline after three told periods, not after 180 s or 30 min."""
    told = {"phase": "Enrolled", "desiredVersion": "v1", "desiredHeartbeatPeriodSeconds": 1}
    reports = {"dev-t1": without_claim(heartbeat()), "dev-t2": heartbeat(period=600)}
    for name in reports:
        create_device(bridge_env.kube.api, NAMESPACE, name, period=60, status=told)
    await start_bridge()
    devices = {name: await asyncio.to_thread(bridge_env.device, name) for name in reports}
    try:
        for name, report in reports.items():
            topic = device_topic(name, DeviceTopic.STATUS)
            await asyncio.to_thread(devices[name].publish, topic, report)
        await eventually(
            lambda: all(online_reason(bridge_env, name)[0] == "Online" for name in reports)
        )
        started = asyncio.get_running_loop().time()
        missed = ("Offline", "HeartbeatsMissed")
        await eventually(
            lambda: all(online_reason(bridge_env, name) == missed for name in reports), within=10
        )
        assert asyncio.get_running_loop().time() - started >= 2.0  # three periods, not one
    finally:
        for device in devices.values():
            await asyncio.to_thread(device.close)


async def test_a_broker_outage_marks_no_device_offline(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    """Longer than three heartbeat periods without the broker: the bridge heard nothing, so
    it concludes nothing; the device reports again once both are back."""
    create_device(bridge_env.kube.api, NAMESPACE, "dev-8", period=1)
    bridge = await start_bridge()
    topic = device_topic("dev-8", DeviceTopic.STATUS)
    device = await asyncio.to_thread(bridge_env.device, "dev-8")
    try:
        await asyncio.to_thread(device.publish, topic, heartbeat(period=1))
        await eventually(lambda: online_reason(bridge_env, "dev-8") == ("Online", "DeviceOnline"))
    finally:
        await asyncio.to_thread(device.close)
    await asyncio.to_thread(bridge_env.broker.stop)
    seen = set()
    for _ in range(25):  # 5 s: the device's deadline (3 s) passes while the broker is down
        seen.add(await asyncio.to_thread(online_reason, bridge_env, "dev-8"))
        await asyncio.sleep(0.2)
    await asyncio.to_thread(bridge_env.broker.start)
    assert bridge.intake is not None
    await asyncio.wait_for(bridge.intake.wait_ready(), 30)
    device = await asyncio.to_thread(bridge_env.device, "dev-8")
    try:
        await asyncio.to_thread(device.publish, topic, heartbeat(period=1))
        for _ in range(10):
            seen.add(await asyncio.to_thread(online_reason, bridge_env, "dev-8"))
            await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(device.close)
    assert seen == {("Online", "DeviceOnline")}


def connection_messages(bridge: Bridge) -> float:
    value = bridge.metrics.registry.get_sample_value(
        "flotta_bridge_messages_total", {"kind": "connection"}
    )
    return value or 0.0


async def test_a_broker_restart_marks_no_device_with_a_will_offline(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    """Mosquitto sends every connected device's will while it shuts down; the device's birth
    a few seconds later, within the grace, leaves nothing to write."""
    create_device(bridge_env.kube.api, NAMESPACE, "dev-9")
    bridge = await start_bridge()
    topic = device_topic("dev-9", DeviceTopic.CONNECTION)
    will = encode(ConnectionState(state="offline", time=datetime.now(UTC), reason="lost"))

    async def connect_and_announce() -> Publisher:
        device = await asyncio.to_thread(bridge_env.device, "dev-9", (topic, will))
        birth = ConnectionState(state="online", time=datetime.now(UTC), applied_version="v1")
        await asyncio.to_thread(device.publish, topic, encode(birth))
        return device

    device = await connect_and_announce()
    await eventually(lambda: online_reason(bridge_env, "dev-9") == ("Online", "DeviceOnline"))
    assert connection_messages(bridge) == 1
    await asyncio.to_thread(bridge_env.broker.stop)
    await asyncio.to_thread(device.drop)
    await asyncio.to_thread(bridge_env.broker.start)
    assert bridge.intake is not None
    await asyncio.wait_for(bridge.intake.wait_ready(), 30)
    device = await connect_and_announce()
    try:
        await eventually(lambda: connection_messages(bridge) >= 3)  # the will, then the birth
        seen = set()
        for _ in range(10):
            seen.add(await asyncio.to_thread(online_reason, bridge_env, "dev-9"))
            await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(device.close)
    assert seen == {("Online", "DeviceOnline")}
    assert bridge.status_writer is not None
    assert bridge.status_writer.written == 1  # the first birth; nothing since

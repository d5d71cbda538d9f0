"""Bad device input is rejected, counted and reported on NATS; the bridge keeps serving the
other devices. Health and metrics endpoints show it."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import nats

from flotta.bridge.outbound import REJECTED_SUBJECT
from flotta.bridge.publishing import NatsPublisher
from flotta.bridge.streams import stream_specs
from flotta.schemas.topics import DeviceTopic, device_topic
from tests.bridge.conftest import NAMESPACE, SMALL_STREAMS, BridgeEnv, StartBridge
from tests.bridge.support import create_device
from tests.bridge.test_integration import eventually, heartbeat, status_of
from tests.fixtures.mqtt_probe import MqttProbe


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def rejected_events(env: BridgeEnv, count: int) -> list[dict[str, Any]]:
    nc = await nats.connect(env.nats.url)
    try:
        js = nc.jetstream()
        subscription = await js.pull_subscribe(REJECTED_SUBJECT, stream="FLOTTA_REJECTED")
        messages = await subscription.fetch(count, timeout=5)
        return [json.loads(message.data) for message in messages]
    finally:
        await nc.close()


async def test_bad_input_is_rejected_and_others_continue(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-3")
    bridge = await start_bridge()
    good = await asyncio.to_thread(bridge_env.device, "dev-3")
    ghost = await asyncio.to_thread(bridge_env.device, "ghost")  # has a certificate, no EdgeDevice
    status_topic = device_topic("dev-3", DeviceTopic.STATUS)
    try:
        await asyncio.to_thread(
            ghost.publish, device_topic("ghost", DeviceTopic.STATUS), heartbeat()
        )
        await asyncio.to_thread(good.publish, status_topic, b"not json")
        wrong_version = json.dumps({"schemaVersion": 2, "time": "2026-01-01T00:00:00Z"})
        await asyncio.to_thread(good.publish, status_topic, wrong_version.encode())
        await asyncio.to_thread(good.publish, status_topic, b"{" + b" " * 200_000 + b"}")
        await asyncio.to_thread(good.publish, device_topic("dev-3", DeviceTopic.EVENTS), b"[]")
        await asyncio.to_thread(good.publish, status_topic, heartbeat(("web", "Running")))

        await eventually(lambda: status_of(bridge_env, "dev-3").get("phase") == "Online")
        metrics = bridge.metrics
        # an unknown device gets a grace period (it may have just enrolled), then is rejected
        await eventually(lambda: metrics.rejected.labels("unknown-device")._value.get() == 1)
        assert metrics.rejected.labels("malformed")._value.get() == 2
        assert metrics.rejected.labels("schema-version")._value.get() == 1
        assert metrics.rejected.labels("oversized")._value.get() == 1

        events = await rejected_events(bridge_env, 5)
        reasons = sorted(event["data"]["reason"].split(":")[0] for event in events)
        assert len(events) == 5
        assert all(event["type"] == "io.flotta.bridge.rejected" for event in events)
        assert any("no EdgeDevice named 'ghost'" in event["data"]["reason"] for event in events)
        assert any(event["data"]["size"] > 200_000 for event in events)
        assert reasons  # every rejection says why

        assert bridge.health is not None
        port = bridge.health.port
        code, body = await asyncio.to_thread(http_get, port, "/metrics")
        assert code == 200
        assert b'flotta_bridge_rejected_total{reason="unknown-device"} 1.0' in body
        assert b'flotta_bridge_messages_total{kind="status"} 1.0' in body
        assert b"flotta_bridge_nats_publish_seconds_count" in body
        code, body = await asyncio.to_thread(http_get, port, "/readyz")
        assert (code, json.loads(body)) == (
            200,
            {"kubernetes": True, "loops": True, "mqtt": True, "nats": True},
        )
        assert await asyncio.to_thread(http_get, port, "/healthz") == (200, b"ok\n")
        assert (await asyncio.to_thread(http_get, port, "/nope"))[0] == 404
    finally:
        await asyncio.to_thread(good.close)
        await asyncio.to_thread(ghost.close)


async def test_a_device_that_just_enrolled_is_not_rejected(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    bridge = await start_bridge()
    late = await asyncio.to_thread(bridge_env.device, "dev-late")
    try:
        # the report arrives before the EdgeDevice exists in the bridge's view
        await asyncio.to_thread(
            late.publish,
            device_topic("dev-late", DeviceTopic.STATUS),
            heartbeat(("web", "Running")),
        )
        await asyncio.sleep(0.5)
        create_device(bridge_env.kube.api, NAMESPACE, "dev-late")
        await eventually(lambda: status_of(bridge_env, "dev-late").get("phase") == "Online")
        assert bridge.metrics.rejected.labels("unknown-device")._value.get() == 0
    finally:
        await asyncio.to_thread(late.close)


async def test_poison_heartbeats_from_one_device_leave_the_others_served(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    """The attacks that once stopped the bridge for every device: a time without a zone after
    a normal heartbeat (a naive/aware comparison), and an integer of 100,000 digits."""
    create_device(bridge_env.kube.api, NAMESPACE, "dev-bad")
    create_device(bridge_env.kube.api, NAMESPACE, "dev-good")
    bridge = await start_bridge()
    bad = await asyncio.to_thread(bridge_env.device, "dev-bad")
    good = await asyncio.to_thread(bridge_env.device, "dev-good")
    bad_status = device_topic("dev-bad", DeviceTopic.STATUS)
    try:
        await asyncio.to_thread(bad.publish, bad_status, heartbeat(applied="v1"))
        naive = json.loads(heartbeat(applied="v2"))
        naive["time"] = naive["time"].replace("Z", "").split("+")[0]
        await asyncio.to_thread(bad.publish, bad_status, json.dumps(naive).encode())
        huge = heartbeat(applied="v3")[:-1] + b',"heartbeatPeriodSeconds":' + b"9" * 100_000 + b"}"
        await asyncio.to_thread(bad.publish, bad_status, huge)
        for kind in (DeviceTopic.EVENTS, DeviceTopic.METRICS, DeviceTopic.LOGS):
            await asyncio.to_thread(bad.publish, device_topic("dev-bad", kind), huge)
        await asyncio.to_thread(
            good.publish, device_topic("dev-good", DeviceTopic.STATUS), heartbeat(applied="g1")
        )
        await eventually(lambda: status_of(bridge_env, "dev-good").get("phase") == "Online")
        rejected = bridge.metrics.rejected
        await eventually(lambda: rejected.labels("malformed")._value.get() == 4)
        assert rejected.labels("oversized")._value.get() == 1  # events are at most 8 KiB
        assert bridge.failure is None
        assert all(not task.done() for task in bridge._tasks)
        record = bridge.fleet.record("dev-bad")
        assert record is not None
        assert record.current.applied_version == "v1"  # what was refused changed nothing
        assert bridge.health is not None
        assert await asyncio.to_thread(http_get, bridge.health.port, "/healthz") == (200, b"ok\n")
    finally:
        await asyncio.to_thread(bad.close)
        await asyncio.to_thread(good.close)


async def test_a_device_flooding_bad_messages_cannot_crowd_out_the_reports_of_others(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-flood")
    create_device(bridge_env.kube.api, NAMESPACE, "dev-other")
    bridge = await start_bridge()
    flood = await asyncio.to_thread(bridge_env.device, "dev-flood")
    other = await asyncio.to_thread(bridge_env.device, "dev-other")
    try:
        for _ in range(200):
            await asyncio.to_thread(
                flood.publish, device_topic("dev-flood", DeviceTopic.STATUS), b"junk", wait=False
            )
        await asyncio.to_thread(
            other.publish, device_topic("dev-other", DeviceTopic.STATUS), b"also junk"
        )
        malformed = bridge.metrics.rejected.labels("malformed")
        await eventually(lambda: malformed._value.get() == 201)
        unreported = bridge.metrics.rejections_unreported._value.get()
        assert 185 <= unreported <= 190  # a burst of 10 (and a token or so) reported, no more

        nc = await nats.connect(bridge_env.nats.url)
        try:
            js = nc.jetstream()
            rejected = await js.stream_info("FLOTTA_REJECTED")
            assert rejected.state.messages == 201 - unreported
            events = await js.stream_info("FLOTTA_EVENTS")
            assert events.state.messages == 0  # rejections no longer share the events' room
        finally:
            await nc.close()
        reports = await rejected_events(bridge_env, int(201 - unreported))
        assert any("dev-other" in report["data"]["topic"] for report in reports)
    finally:
        await asyncio.to_thread(flood.close)
        await asyncio.to_thread(other.close)


async def test_streams_of_an_older_bridge_are_moved_over(bridge_env: BridgeEnv) -> None:
    """FLOTTA_EVENTS used to hold the rejections: updating it frees the subject for
    FLOTTA_REJECTED, so an upgraded bridge starts."""
    nc = await nats.connect(bridge_env.nats.url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            name="FLOTTA_EVENTS",
            subjects=["flotta.device.*.*.events", "flotta.device.*.*.connection", REJECTED_SUBJECT],
        )
        publisher = NatsPublisher(bridge_env.nats.url)
        await publisher.connect()
        try:
            await publisher.ensure_streams(stream_specs(SMALL_STREAMS))
        finally:
            await publisher.close()
        assert (await js.stream_info("FLOTTA_REJECTED")).config.subjects == [REJECTED_SUBJECT]
        assert REJECTED_SUBJECT not in (
            (await js.stream_info("FLOTTA_EVENTS")).config.subjects or []
        )
    finally:
        await nc.close()


async def test_a_retained_report_is_cleared_so_observers_never_get_it(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    """A device can publish its reports retained (the ACL cannot forbid the flag): a dashboard
    subscribing later would get that message as if it were new. The bridge takes the report
    and clears the retained copy; an empty message is a clear, never a rejection."""
    create_device(bridge_env.kube.api, NAMESPACE, "dev-retains")
    bridge = await start_bridge()
    device = await asyncio.to_thread(bridge_env.device, "dev-retains")
    status_topic = device_topic("dev-retains", DeviceTopic.STATUS)
    try:
        info = device.client.publish(status_topic, heartbeat(), qos=1, retain=True)
        await asyncio.to_thread(info.wait_for_publish, 10)
        await eventually(lambda: status_of(bridge_env, "dev-retains").get("phase") == "Online")
        await eventually(lambda: bridge.metrics.retained_cleared._value.get() == 1)
        await eventually(lambda: bridge.metrics.clears_seen._value.get() >= 1)

        observer = MqttProbe(
            bridge_env.broker.host,
            bridge_env.broker.port,
            bridge_env.broker.observer("grafana"),
            "grafana",
        )
        await asyncio.to_thread(observer.connect)
        try:
            await asyncio.to_thread(observer.subscribe, "flotta/devices/+/status")
            assert await asyncio.to_thread(observer.next_message, timeout=1.5) is None
        finally:
            await asyncio.to_thread(observer.close)
        assert (
            sum(
                sample.value
                for family in bridge.metrics.rejected.collect()
                for sample in family.samples
                if sample.name.endswith("_total")
            )
            == 0
        )
    finally:
        await asyncio.to_thread(device.close)

"""Random payloads through the real ingest path (real NATS, real fleet state from the local
Kubernetes API): every message is either accepted or rejected and acknowledged, never a
crash, and the bridge keeps serving."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotta.bridge.app import Bridge
from flotta.bridge.intake import Delivery
from flotta.schemas.codec import encode
from flotta.schemas.topics import TELEMETRY_KINDS, DeviceTopic, device_topic
from flotta.schemas.wire.status import StatusReport, WorkloadReport
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.support import create_device, wait_for
from tests.bridge.test_integration import eventually, heartbeat, status_of

KNOWN = "dev-9"


class ThreadedBridge:
    """A bridge on its own event loop in a thread, so that a synchronous property test can
    drive it."""

    def __init__(self, env: BridgeEnv) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bridge-loop")
        self.thread.start()
        self.bridge = Bridge(env.settings)
        self.call(self._start())

    async def _start(self) -> None:
        await self.bridge.start()
        await asyncio.wait_for(self.bridge.wait_ready(), 15)

    def call(self, coro: Any, timeout: float = 20) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        try:
            self.call(self.bridge.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def threaded_bridge(bridge_env: BridgeEnv) -> Iterator[ThreadedBridge]:
    create_device(bridge_env.kube.api, NAMESPACE, KNOWN)
    running = ThreadedBridge(bridge_env)
    try:
        yield running
    finally:
        running.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
VALID = encode(
    StatusReport(
        time=datetime(2026, 1, 1, tzinfo=UTC), workloads=[WorkloadReport(name="w", phase="Running")]
    )
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.binary(max_size=512))
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    if choice == 2:  # the right version, random content
        document = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
        document["schemaVersion"] = 1
        return json.dumps(document).encode()
    if choice == 3:  # a valid heartbeat with a few bytes changed
        data = bytearray(VALID)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return draw(st.sampled_from([b"", b"{}", b"[]", b"null", b"1" * 300_000, VALID]))


topics = st.one_of(
    st.sampled_from(TELEMETRY_KINDS).map(lambda kind: device_topic(KNOWN, kind)),
    st.sampled_from(TELEMETRY_KINDS).map(lambda kind: device_topic("unknown-device", kind)),
    st.text(max_size=40),
)


def rejected_total(bridge: Bridge) -> float:
    return sum(
        sample.value
        for family in bridge.metrics.rejected.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def accepted_total(bridge: Bridge) -> float:
    return sum(
        sample.value
        for family in bridge.metrics.messages_in.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(topic=topics, payload=payloads())
def test_random_payloads_are_accepted_or_rejected(
    threaded_bridge: ThreadedBridge, topic: str, payload: bytes
) -> None:
    bridge = threaded_bridge.bridge
    assert bridge.ingest is not None
    ingest = bridge.ingest
    acked = ingest.acked
    counted = rejected_total(bridge) + accepted_total(bridge)
    threaded_bridge.call(ingest.handle(Delivery(mid=0, qos=0, topic=topic, payload=payload)))
    wait_for(lambda: ingest.acked == acked + 1, timeout=10, interval=0.005)
    assert rejected_total(bridge) + accepted_total(bridge) == counted + 1
    assert all(not task.done() for task in bridge._tasks)


async def test_random_payloads_over_mqtt_leave_other_devices_unaffected(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-10")
    create_device(bridge_env.kube.api, NAMESPACE, "dev-11")
    bridge = await start_bridge()
    noisy = await asyncio.to_thread(bridge_env.device, "dev-10")
    quiet = await asyncio.to_thread(bridge_env.device, "dev-11")
    rng = random.Random(20261123)
    try:
        for n in range(100):
            kind = rng.choice(TELEMETRY_KINDS)
            size = rng.choice([0, 1, 10, 100, 1000, 70_000])
            junk = bytes(rng.getrandbits(8) for _ in range(size))
            await asyncio.to_thread(noisy.publish, device_topic("dev-10", kind), junk)
            if n == 50:
                await asyncio.to_thread(
                    quiet.publish, device_topic("dev-11", DeviceTopic.STATUS), heartbeat()
                )
        await eventually(lambda: status_of(bridge_env, "dev-11").get("phase") == "Online")
        await eventually(lambda: bridge.ingest is not None and bridge.ingest.acked == 101)
        assert rejected_total(bridge) == 100
        assert all(not task.done() for task in bridge._tasks)
    finally:
        await asyncio.to_thread(noisy.close)
        await asyncio.to_thread(quiet.close)

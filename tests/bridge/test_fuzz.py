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
from flotta.bridge.mqtt_intake import Delivery
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


def handled_total(bridge: Bridge) -> float:
    """Every message ends accepted, rejected, or (empty) taken as the clear of a retained one."""
    return rejected_total(bridge) + accepted_total(bridge) + bridge.metrics.clears_seen._value.get()


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
    counted = handled_total(bridge)
    threaded_bridge.call(
        ingest.handle(Delivery(mid=0, qos=0, topic=topic, payload=payload), grace=False)
    )
    wait_for(lambda: ingest.acked == acked + 1, timeout=10, interval=0.005)
    assert handled_total(bridge) == counted + 1
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
        assert rejected_total(bridge) + bridge.metrics.clears_seen._value.get() == 100
        assert all(not task.done() for task in bridge._tasks)
    finally:
        await asyncio.to_thread(noisy.close)
        await asyncio.to_thread(quiet.close)


# ---- sequences of hostile messages from one device ------------------------------------------

ATTACKER = "dev-9"
BYSTANDER = "dev-12"
WRONG_CLOCKS = [
    "2999-01-01T00:00:00Z",  # an RTC far ahead
    "1970-01-01T00:00:05Z",  # no RTC, before NTP
    "2026-01-01T00:00:00+14:00",
    "2001-06-30T23:59:60Z",  # a leap second: not a valid time
    "0001-01-01T00:00:00+14:00",  # out of range once in UTC
    "9999-12-31T23:59:59-14:00",
    "2026-01-01T00:00:00",  # no zone
    "2026-01-01 00:00:00Z",
]
HUGE = "9" * 100_000


def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@st.composite
def hostile_messages(draw: st.DrawFn) -> tuple[DeviceTopic, bytes]:
    """A message as a buggy or hostile device would send it: a valid one of its kind with one
    or two things changed."""
    kind = draw(st.sampled_from([DeviceTopic.STATUS, DeviceTopic.EVENTS, DeviceTopic.LOGS]))
    stamp = now_text()
    documents: dict[DeviceTopic, dict[str, Any]] = {
        DeviceTopic.STATUS: {
            "schemaVersion": 1,
            "time": stamp,
            "appliedVersion": "hostile",
            "heartbeatPeriodSeconds": 10,
            "workloads": [{"name": "w", "phase": "Running", "since": stamp}],
        },
        DeviceTopic.EVENTS: {
            "schemaVersion": 1,
            "id": draw(st.uuids()).hex,
            "time": stamp,
            "reason": "Started",
            "stream": "s1",
            "sequence": draw(st.integers(0, 10)),
        },
        DeviceTopic.LOGS: {
            "schemaVersion": 1,
            "stream": "s1",
            "sequence": draw(st.integers(0, 10)),
            "lines": [{"workload": "w", "time": stamp, "line": "x"}],
        },
    }
    document = documents[kind]
    text: str | None = None
    for _ in range(draw(st.integers(1, 2))):
        change = draw(st.integers(0, 6))
        if change == 0:
            clock = draw(st.sampled_from(WRONG_CLOCKS))
            if kind is DeviceTopic.LOGS:
                document["lines"][0]["time"] = clock
            else:
                document["time"] = clock
        elif change == 1:  # an integer Python will not convert
            key = "heartbeatPeriodSeconds" if kind is DeviceTopic.STATUS else "sequence"
            if kind is DeviceTopic.LOGS or kind is DeviceTopic.EVENTS:
                key = "sequence"
            text = json.dumps(document)[:-1] + f', "{key}": {HUGE}}}'
        elif change == 2:  # snake_case names
            document = {
                "".join("_" + c.lower() if c.isupper() else c for c in key): value
                for key, value in document.items()
            }
        elif change == 3:  # a duplicate key
            text = json.dumps(document)[:-1] + ', "schemaVersion": 1, "schemaVersion": true}'
        elif change == 4:  # numbers JSON cannot hold, or of the wrong type
            document["sequence" if kind is not DeviceTopic.STATUS else "heartbeatPeriodSeconds"] = (
                draw(st.sampled_from([1e999, -1, 10.0, "10", 2**64, True]))
            )
        elif change == 5:  # nesting deeper than any parser should follow
            text = json.dumps(document)[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
        else:  # the time as a number
            document["time"] = draw(st.sampled_from([0, 1.7e9, -1, 10**20]))
    if text is None:
        text = json.dumps(document, allow_nan=True)
    return kind, text.encode()


@pytest.fixture
def bystander(bridge_env: BridgeEnv) -> str:
    create_device(bridge_env.kube.api, NAMESPACE, BYSTANDER)
    return BYSTANDER


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(hostile_messages(), min_size=1, max_size=6), round_id=st.uuids())
def test_hostile_sequences_from_one_device_never_stop_or_freeze_the_others(
    bystander: str,
    threaded_bridge: ThreadedBridge,
    sequence: list[tuple[DeviceTopic, bytes]],
    round_id: Any,
) -> None:
    bridge = threaded_bridge.bridge
    assert bridge.ingest is not None
    ingest = bridge.ingest
    acked = ingest.acked
    counted = handled_total(bridge)
    deliveries = [
        Delivery(mid=0, qos=0, topic=device_topic(ATTACKER, kind), payload=payload)
        for kind, payload in sequence
    ]
    version = f"good-{round_id.hex[:12]}"
    deliveries.append(
        Delivery(
            mid=0,
            qos=0,
            topic=device_topic(bystander, DeviceTopic.STATUS),
            payload=heartbeat(applied=version),
        )
    )
    # the attacker's own clock is right again: its next report must apply
    deliveries.append(
        Delivery(
            mid=0,
            qos=0,
            topic=device_topic(ATTACKER, DeviceTopic.STATUS),
            payload=heartbeat(applied=version),
        )
    )
    for delivery in deliveries:
        threaded_bridge.call(ingest.handle(delivery, grace=False))
    wait_for(lambda: ingest.acked == acked + len(deliveries), timeout=10, interval=0.005)
    assert handled_total(bridge) == counted + len(deliveries)
    for device in (bystander, ATTACKER):
        record = bridge.fleet.record(device)
        assert record is not None
        assert record.current.applied_version == version, device
    assert bridge.failure is None
    assert all(not task.done() for task in bridge._tasks)

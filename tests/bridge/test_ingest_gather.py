"""The ingest loop lets a delivery that arrives alone wait a moment for the ones close behind
it, so that trickling messages (a reconnect storm) share a turn: one NATS flush, one read of
the acknowledgements, one PUBACK write. The publisher here records what the ingest path hands
it; it is the bridge's own interface, not a network peer."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from flotta.bridge.coalescer import WriteCoalescer
from flotta.bridge.device_status import DeviceContext
from flotta.bridge.fleet_state import Fleet
from flotta.bridge.ingest import Ingest
from flotta.bridge.metrics import BridgeMetrics
from flotta.bridge.outbound import Outbound
from flotta.mqtt import Message
from flotta.schemas.codec import encode
from flotta.schemas.wire import ConnectionState
from flotta.schemas.wire.events import DeviceEvent


class RecordingPublisher:
    """Acknowledges every publish at once and notes it in the shared event list."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def publish(self, message: Outbound) -> asyncio.Future[None]:
        self.events.append(f"published {message.subject.rsplit('.', 2)[-2]}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def publish_core(self, message: Outbound) -> None:
        self.events.append("rejection reported")


class NoEvents:
    def offer(self, context: DeviceContext, event: DeviceEvent) -> None:
        raise AssertionError("no device events in this test")


def fleet_of(*device_ids: str) -> Fleet:
    now = time.monotonic()
    fleet = Fleet(WriteCoalescer(rate=50, burst=100, refresh_rate=5, now=now))
    for device_id in device_ids:
        obj = {
            "metadata": {"name": device_id, "namespace": "fleet", "generation": 1},
            "status": {"phase": "Enrolled", "desiredVersion": "v1"},
        }
        fleet.observed(obj, datetime.now(UTC), now)
    return fleet


def birth(device_id: str) -> Message:
    payload = encode(ConnectionState(state="online", time=datetime.now(UTC)))
    return Message(f"flotta/devices/{device_id}/connection", payload, qos=1)


async def offer_two_apart(gather: float) -> list[str]:
    """Two births 20 ms apart; what happened, in order."""
    events: list[str] = []
    both_acked = asyncio.Event()

    def ack(delivery: Message) -> None:
        events.append(f"acked {delivery.topic.split('/')[2]}")
        if sum(event.startswith("acked") for event in events) == 2:
            both_acked.set()

    ingest = Ingest(
        fleet=fleet_of("dev-a", "dev-b"),
        publisher=RecordingPublisher(events),
        events=NoEvents(),
        metrics=BridgeMetrics(),
        ack=ack,
        capacity=10,
        gather=gather,
    )
    running = asyncio.ensure_future(ingest.run())
    try:
        events.append("offered dev-a")
        ingest.offer(birth("dev-a"))
        await asyncio.sleep(0.02)
        events.append("offered dev-b")
        ingest.offer(birth("dev-b"))
        await asyncio.wait_for(both_acked.wait(), 5)
    finally:
        ingest.stop()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await ingest.close()
    return events


async def test_a_lone_delivery_waits_for_the_next_and_they_share_a_turn() -> None:
    events = await offer_two_apart(gather=0.5)
    assert events == [
        "offered dev-a",
        "offered dev-b",
        "published dev-a",
        "published dev-b",
        "acked dev-a",
        "acked dev-b",
    ]


async def test_without_gathering_each_delivery_goes_alone() -> None:
    events = await offer_two_apart(gather=0.0)
    assert events.index("published dev-a") < events.index("offered dev-b")
    assert events.count("acked dev-a") == events.count("acked dev-b") == 1

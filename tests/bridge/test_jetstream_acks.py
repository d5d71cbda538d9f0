"""The bridge's JetStream publishes against a real nats-server: acknowledgements on one inbox."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.errors import APIError, NoStreamResponseError

from flotta.bridge.jetstream_acks import AckInbox, api_error
from flotta.bridge.outbound import Outbound
from flotta.bridge.publishing import NatsPublisher
from flotta.bridge.streams import StreamSpec
from flotta.dev.nats_server import NatsServer

SPEC = StreamSpec(
    name="ACKS",
    subjects=("acks.>",),
    max_age=60.0,
    max_bytes=1024 * 1024,
    max_msgs_per_subject=-1,
    duplicate_window=60.0,
)


async def stored(server: NatsServer) -> int:
    nc = await nats.connect(server.url)
    try:
        return int((await nc.jetstream().stream_info("ACKS")).state.messages)
    finally:
        await nc.close()


async def test_publishes_are_acknowledged_and_duplicates_land_once(
    nats_server: NatsServer,
) -> None:
    publisher = NatsPublisher(nats_server.url, max_pending=8)
    await publisher.connect()
    try:
        await publisher.ensure_streams((SPEC,))
        futures = [
            await publisher.publish(Outbound(f"acks.{n % 3}", f"id-{n % 20}", b"{}"))
            for n in range(40)  # more than max_pending: later publishes wait for room
        ]
        await asyncio.wait_for(asyncio.gather(*futures), 10)
        assert await stored(nats_server) == 20
    finally:
        await publisher.close()


async def test_no_stream_fails_the_future(nats_server: NatsServer) -> None:
    publisher = NatsPublisher(nats_server.url)
    await publisher.connect()
    try:
        future = await publisher.publish(Outbound("nowhere.x", "id-1", b"{}"))
        with pytest.raises(NoStreamResponseError):
            await asyncio.wait_for(future, 10)
    finally:
        await publisher.close()


async def test_an_error_answer_fails_the_future(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    acks = AckInbox(nc, capacity=4)
    await acks.start()
    try:
        await nc.jetstream().add_stream(name="ACKS", subjects=["acks.>"])
        reply, future = await acks.reply_to()
        # a wrong expected stream is refused by JetStream with an error answer
        await nc.publish("acks.1", b"{}", reply, {"Nats-Expected-Stream": "OTHER"})
        with pytest.raises(APIError):
            await asyncio.wait_for(future, 10)
        assert acks.pending == 0
        reply, future = await acks.reply_to()
        acks.forget(reply)
        assert future.cancelled()
        assert acks.pending == 0
    finally:
        await acks.stop()
        await nc.close()


def test_api_error_from_odd_answers() -> None:
    assert isinstance(api_error({"code": 400, "description": "bad"}), APIError)
    assert isinstance(api_error({"description": "no code"}), APIError)
    assert isinstance(api_error("text"), APIError)

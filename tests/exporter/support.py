"""Helpers of the exporter tests and benchmark: the bridge's streams on a nats-server,
batches published as the bridge publishes them, the exporter run in this process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from flotta.bridge.outbound import MSG_ID_HEADER, to_nats
from flotta.bridge.publishing import NatsPublisher
from flotta.bridge.streams import stream_specs
from flotta.exporter.jetstream import DEAD_LETTER_STREAM, TELEMETRY_STREAM, durable_name
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.telemetry import LogsBatch, MetricSample, MetricsBatch


async def create_streams(url: str) -> None:
    """The streams the bridge creates at start, by the bridge's own code."""
    publisher = NatsPublisher(url)
    await publisher.connect()
    try:
        await publisher.ensure_streams(stream_specs())
    finally:
        await publisher.close()


def metrics_batch(
    sequence: int,
    times_ms: list[int],
    *,
    name: str = "flotta_test_value",
    labels: dict[str, str] | None = None,
    value: Callable[[int], float] = float,
    stream: str = "buffer-1",
) -> MetricsBatch:
    return MetricsBatch(
        stream=stream,
        sequence=sequence,
        samples=[
            MetricSample(name=name, labels=labels or {}, value=value(t), timestamp_ms=t)
            for t in times_ms
        ],
    )


async def publish_batch(
    nc: NatsClient,
    namespace: str,
    device: str,
    batch: MetricsBatch | LogsBatch,
    *,
    wait: bool = True,
) -> None:
    """As the bridge publishes it: the CloudEvent on the device's subject, with its
    ``Nats-Msg-Id``."""
    out = to_nats(
        namespace=namespace,
        device_id=device,
        kind=DeviceTopic.LOGS if isinstance(batch, LogsBatch) else DeviceTopic.METRICS,
        payload=batch,
        data=encode(batch),
        now=datetime.now(UTC),
    )
    if wait:
        await nc.jetstream().publish(out.subject, out.body, headers={MSG_ID_HEADER: out.msg_id})
    else:
        await nc.publish(out.subject, out.body, headers={MSG_ID_HEADER: out.msg_id})


async def consumer_lag(nc: NatsClient, sink: str = "prometheus") -> int:
    """Messages the sink's consumer has not had acknowledged; -1 before it exists."""
    try:
        info = await nc.jetstream().consumer_info(TELEMETRY_STREAM, durable_name(sink))
    except NotFoundError:
        return -1
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def dead_letters(nc: NatsClient) -> list[Any]:
    """Every message of the dead-letter stream, oldest first."""
    js = nc.jetstream()
    info = await js.stream_info(DEAD_LETTER_STREAM)
    return [
        await js.get_msg(DEAD_LETTER_STREAM, seq)
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
        if info.state.messages
    ]


async def eventually(check: Callable[[], Any], *, within: float, what: str) -> Any:
    """Poll ``check`` (sync or async) until it returns something true."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not after {within} s (last: {last!r})")


async def connect(url: str) -> NatsClient:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)


def now_ms() -> int:
    return int(time.time() * 1000)

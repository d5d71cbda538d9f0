"""NATS as the stack runs it: TLS with fleet certificates mapped to users. The bridge writes,
an observer reads, nobody else gets in (nats-server, real)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from flotta.bridge.outbound import to_nats
from flotta.bridge.publishing import NatsPublisher
from flotta.bridge.streams import stream_specs
from flotta.dev.nats_config import NatsTls, bridge_user, observer_user
from flotta.dev.nats_server import NatsServer
from flotta.mqtt import TlsFiles
from flotta.pki.identities import observer_identity
from flotta.schemas.codec import encode
from flotta.schemas.topics import BRIDGE_IDENTITY, DeviceTopic
from flotta.schemas.wire.events import DeviceEvent
from tests.bridge.conftest import SMALL_STREAMS
from tests.fixtures.brokers import TestBroker

EVENTS = "flotta.device.fleet.dev-a.events"


@pytest.fixture
def secured_nats(mosquitto_broker: TestBroker, tmp_path: Path) -> Iterator[NatsServer]:
    pki = mosquitto_broker.pki
    server = NatsServer(
        tmp_path / "nats" / "jetstream",
        log_path=tmp_path / "nats.log",
        tls=NatsTls(pki.server_cert_path, pki.server_key_path, pki.ca_cert_path),
        users=[
            bridge_user(BRIDGE_IDENTITY),
            observer_user(observer_identity("grafana").common_name),
        ],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def context(broker: TestBroker, identity: str | None) -> ssl.SSLContext:
    if identity is None:
        return TlsFiles(broker.ca_path).context()
    creds = {
        "bridge": broker.bridge,
        "observer": lambda: broker.observer("grafana"),
        "device": lambda: broker.device("dev-a"),
    }[identity]()
    return TlsFiles(creds.ca, creds.cert, creds.key).context()


async def test_the_bridge_writes_an_observer_reads_nobody_else_gets_in(
    secured_nats: NatsServer, mosquitto_broker: TestBroker
) -> None:
    assert secured_nats.url.startswith("tls://")
    publisher = NatsPublisher(secured_nats.url, tls=context(mosquitto_broker, "bridge"))
    await publisher.connect()
    try:
        await publisher.ensure_streams(stream_specs(SMALL_STREAMS))
        event = DeviceEvent(id="e-1", time=datetime.now(UTC), reason="Started")
        outbound = to_nats(
            namespace="fleet",
            device_id="dev-a",
            kind=DeviceTopic.EVENTS,
            payload=event,
            data=encode(event),
            now=datetime.now(UTC),
        )
        await asyncio.wait_for(await publisher.publish(outbound), 5)
    finally:
        await publisher.close()

    observer = await nats.connect(secured_nats.url, tls=context(mosquitto_broker, "observer"))
    try:
        js = observer.jetstream()
        consumer = await js.pull_subscribe(EVENTS, stream="FLOTTA_EVENTS")
        [message] = await consumer.fetch(1, timeout=5)
        await message.ack()
        assert b'"reason":"Started"' in message.data
        # It cannot write a device event, nor drop a stream.
        with pytest.raises((NatsError, TimeoutError)):
            await js.publish(EVENTS, b"{}", timeout=2)
        with pytest.raises((NatsError, TimeoutError)):
            await js.delete_stream("FLOTTA_EVENTS")
        info = await js.stream_info("FLOTTA_EVENTS")
        assert info.state.messages == 1
    finally:
        await observer.close()

    for stranger in (None, "device"):  # no certificate; a certificate mapped to no user
        with pytest.raises((NatsError, OSError, ssl.SSLError, TimeoutError)):
            await nats.connect(
                secured_nats.url,
                tls=context(mosquitto_broker, stranger),
                allow_reconnect=False,
                connect_timeout=3,
                max_reconnect_attempts=0,
            )

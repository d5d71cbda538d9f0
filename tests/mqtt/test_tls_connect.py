"""The TCP connect and TLS handshake on the event loop (``flotta.mqtt.tls_connect``), against a
real Mosquitto and against a listener that accepts and never answers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from flotta.mqtt import ConnectError, MqttClient, TlsFiles
from flotta.mqtt.tls_connect import open_socket
from tests.fixtures.brokers import TestBroker
from tests.mqtt.helpers import settings_for


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def _context(broker: TestBroker) -> ssl.SSLContext:
    creds = broker.device("dev-a")
    return TlsFiles(creds.ca, creds.cert, creds.key).context()


async def test_the_handshake_completes_without_a_thread(mosquitto_broker: TestBroker) -> None:
    threads = threading.active_count()
    sock = await open_socket(
        mosquitto_broker.host, mosquitto_broker.port, _context(mosquitto_broker)
    )
    try:
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.getpeercert() is not None
        assert not sock.getblocking()
    finally:
        sock.close()
    assert threading.active_count() == threads


async def test_a_closed_port_is_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: nothing accepts there
        with pytest.raises(ConnectionRefusedError):
            await open_socket("127.0.0.1", port, None)


async def test_a_cancelled_handshake_closes_its_socket(
    mosquitto_broker: TestBroker, silent_listener: int
) -> None:
    context = _context(mosquitto_broker)
    before = _open_descriptors()
    attempt = asyncio.ensure_future(open_socket("127.0.0.1", silent_listener, context))
    await asyncio.sleep(0.2)
    assert not attempt.done()  # waiting for the server's half of the handshake
    assert _open_descriptors() == before + 1
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert _open_descriptors() == before


async def test_a_server_that_never_answers_times_the_attempt_out(
    mosquitto_broker: TestBroker, silent_listener: int
) -> None:
    settings = dataclasses.replace(
        settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a"),
        port=silent_listener,
        connect_timeout=0.3,
    )
    before = _open_descriptors()
    client = MqttClient(settings)
    with pytest.raises(ConnectError, match=r"TLS handshake took longer than 0\.3 s"):
        await client.connect()
    assert not client.connected
    assert _open_descriptors() == before


async def test_a_client_waits_for_a_connect_slot(mosquitto_broker: TestBroker) -> None:
    slots = asyncio.Semaphore(1)
    await slots.acquire()  # another client is opening its connection
    settings = settings_for(mosquitto_broker, mosquitto_broker.device("dev-a"), "dev-a")
    client = MqttClient(settings, connect_slots=slots)
    connecting = asyncio.ensure_future(client.connect())
    try:
        await asyncio.sleep(0.3)
        assert not connecting.done()
        assert not client.connected
        slots.release()
        async with asyncio.timeout(5):
            await connecting
        assert client.connected
        assert not slots.locked()  # the slot is given back once the handshake is done
    finally:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await client.close()

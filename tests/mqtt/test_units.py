"""Pure parts of flotta.mqtt: settings validation, error messages, the bounded inbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flotta.mqtt import (
    ConnectError,
    DisconnectedError,
    MqttSettings,
    PublishError,
    SubscribeError,
    TlsFiles,
)
from flotta.mqtt.messages import Inbox, Message


def _message(n: int, qos: int = 1, generation: int = 1) -> Message:
    return Message(
        topic=f"t/{n}",
        payload=b"x",
        qos=qos,
        retain=False,
        mid=n,
        duplicate=False,
        properties=None,
        connection=generation,
        _acker=lambda _m: None,
    )


def test_queue_must_hold_every_message_the_broker_may_have_in_flight() -> None:
    with pytest.raises(ValueError, match="incoming_queue 10 must be at least receive_maximum 20"):
        MqttSettings("h", 8883, "c", None, receive_maximum=20, incoming_queue=10)


def test_nonsense_reconnect_delays_are_refused_with_the_settings() -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        MqttSettings("h", 8883, "c", reconnect_base=5.0, reconnect_cap=1.0)


def test_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="go together"):
        TlsFiles(Path("ca.pem"), cert=Path("c.pem"))


def test_errors_read_well() -> None:
    assert str(ConnectError("broker", 8883, "Not authorized", 0x87)) == (
        "cannot connect to MQTT broker broker:8883: Not authorized (reason code 0x87)"
    )
    assert str(PublishError("a/b", "Not authorized", 0x87)) == (
        "publish to 'a/b' refused: Not authorized (reason code 0x87)"
    )
    error = SubscribeError([("a/#", "Not authorized", 0x87)])
    assert str(error) == "subscription refused: 'a/#': Not authorized (0x87)"
    assert error.reason_codes == (0x87,)
    assert str(DisconnectedError("subscribe", "Keep alive timeout")) == (
        "subscribe failed: not connected to the MQTT broker: Keep alive timeout"
    )


async def test_inbox_is_bounded_and_says_when_full() -> None:
    inbox = Inbox(2)
    assert inbox.offer(_message(1))
    assert inbox.offer(_message(2))
    assert not inbox.offer(_message(3))
    first = await inbox.get()
    assert first is not None
    assert first.mid == 1
    assert len(inbox) == 1


async def test_inbox_wakes_a_waiting_consumer_and_ends_when_closed() -> None:
    inbox = Inbox(4)
    waiter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.offer(_message(7))
    got = await waiter
    assert got is not None
    assert got.mid == 7
    closing = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.close()
    assert await closing is None
    assert not inbox.offer(_message(8))


def test_inbox_discards_by_predicate() -> None:
    inbox = Inbox(10)
    for n in range(4):
        inbox.offer(_message(n, qos=n % 2, generation=1))
    assert inbox.discard(lambda m: m.qos > 0) == 2
    assert len(inbox) == 2

"""The nats_server fixture: a real nats-server with JetStream, stopped by PID."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import pytest

from flotta.dev.nats_server import NatsServer, NatsServerError


async def test_jetstream_publish_and_consume_round_trip(nats_server: NatsServer) -> None:
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="DEVICES", subjects=["flotta.device.>"])
        first = await js.publish(
            "flotta.device.ns.dev-a.events", b"e1", headers={"Nats-Msg-Id": "batch-1"}
        )
        duplicate = await js.publish(
            "flotta.device.ns.dev-a.events", b"e1", headers={"Nats-Msg-Id": "batch-1"}
        )
        assert not first.duplicate
        assert duplicate.duplicate  # de-duplicated by Nats-Msg-Id
        subscription = await js.pull_subscribe("flotta.device.*.*.events", durable="reader")
        messages = await subscription.fetch(1, timeout=5)
        assert [m.data for m in messages] == [b"e1"]
        await messages[0].ack()
        info = await js.stream_info("DEVICES")
        assert info.state.messages == 1
    finally:
        await client.close()


def test_server_stops_by_pid_and_keeps_its_store(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js", log_path=tmp_path / "nats.log")
    server.start()
    pid = server.pid
    assert pid is not None
    assert server.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert (tmp_path / "js" / "jetstream").is_dir()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    server = NatsServer(
        tmp_path / "js", log_path=tmp_path / "nats.log", binary=str(tmp_path / "nope")
    )
    with pytest.raises(NatsServerError, match="cannot run"):
        server.start()

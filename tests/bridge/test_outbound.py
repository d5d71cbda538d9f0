"""Device message -> NATS subject, message id and CloudEvents body; stream layout."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from flotta.agent.config import AgentConfig
from flotta.bridge.decoding import forwarded
from flotta.bridge.outbound import REJECTED_SUBJECT, message_id, rejection, to_nats
from flotta.bridge.streams import StreamSettings, stream_specs
from flotta.schemas.cloud_events import envelope
from flotta.schemas.codec import decode_device_payload, encode
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport
from flotta.schemas.wire.telemetry import LogLine, LogsBatch, MetricSample, MetricsBatch

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

CASES = [
    (
        DeviceTopic.METRICS,
        MetricsBatch(
            stream="s1", sequence=7, samples=[MetricSample(name="x", value=1, timestamp_ms=1)]
        ),
        "dev-1:metrics:s1:7",
    ),
    (
        DeviceTopic.LOGS,
        LogsBatch(stream="s1", sequence=8, lines=[LogLine(workload="w", time=NOW, line="hi")]),
        "dev-1:logs:s1:8",
    ),
    (DeviceTopic.EVENTS, DeviceEvent(id="e-1", time=NOW, reason="Failed"), "dev-1:events:e-1"),
    (DeviceTopic.STATUS, StatusReport(time=NOW), "dev-1:status:2026-01-01T12:00:00+00:00"),
    (
        DeviceTopic.CONNECTION,
        ConnectionState(state="online", time=NOW),
        "dev-1:connection:online:2026-01-01T12:00:00+00:00",
    ),
]


@pytest.mark.parametrize(("kind", "payload", "msg_id"), CASES)
def test_mapping(kind: DeviceTopic, payload: object, msg_id: str) -> None:
    raw = encode(payload)  # type: ignore[arg-type]
    decoded = decode_device_payload(kind, raw)
    out = to_nats(
        namespace="ns",
        device_id="dev-1",
        kind=kind,
        payload=decoded,
        data=forwarded(decoded),
        now=NOW,
    )
    assert out.subject == f"flotta.device.ns.dev-1.{kind.value}"
    assert out.msg_id == msg_id
    event = json.loads(out.body)
    assert event["specversion"] == "1.0"
    assert event["id"] == msg_id
    assert event["type"] == f"io.flotta.device.{kind.value}.v1"
    assert event["source"] == "/flotta/namespaces/ns/devices/dev-1"
    assert event["time"] == "2026-01-01T12:00:00Z"
    assert event["data"] == json.loads(raw)
    expected = envelope(
        event_id=msg_id,
        kind=kind,
        namespace="ns",
        device_id="dev-1",
        data=json.loads(raw),
        time=NOW,
    )
    assert event == expected
    assert list(event) == list(expected)  # the contract's field order


def test_same_batch_same_id_whatever_the_bytes() -> None:
    batch = MetricsBatch(stream="s", sequence=1, samples=[])
    again = MetricsBatch(stream="s", sequence=1, samples=[], dropped=3)
    assert message_id("d", DeviceTopic.METRICS, batch) == message_id(
        "d", DeviceTopic.METRICS, again
    )


def test_rejection_event() -> None:
    out = rejection(topic="flotta/devices/x/status", reason="unknown device", size=12, now=NOW)
    assert out.subject == REJECTED_SUBJECT
    event = json.loads(out.body)
    assert event["type"] == "io.flotta.bridge.rejected"
    assert event["data"] == {
        "topic": "flotta/devices/x/status",
        "reason": "unknown device",
        "size": 12,
    }
    assert event["id"] == out.msg_id


def test_streams_cover_every_kind_once() -> None:
    specs = stream_specs(StreamSettings(events_max_bytes=1234))
    subjects = [s for spec in specs for s in spec.subjects]
    assert len(subjects) == len(set(subjects)) == 6
    assert {spec.name for spec in specs} == {
        "FLOTTA_EVENTS",
        "FLOTTA_TELEMETRY",
        "FLOTTA_STATUS",
        "FLOTTA_REJECTED",
    }
    rejected = next(spec for spec in specs if spec.name == "FLOTTA_REJECTED")
    assert rejected.subjects == (REJECTED_SUBJECT,)
    assert all(spec.duplicate_window > 0 and spec.max_bytes > 0 for spec in specs)
    assert specs[0].max_bytes == 1234
    assert specs[2].max_msgs_per_subject == 5


def test_copies_the_agent_resends_fall_within_the_duplicate_window() -> None:
    """An event or batch whose receipt was lost is sent again after the agent's resend period;
    JetStream must still remember the first copy's message id then."""
    resend = AgentConfig().telemetry_resend_seconds
    windows = {spec.name: spec.duplicate_window for spec in stream_specs()}
    assert windows["FLOTTA_EVENTS"] >= 5 * resend
    assert windows["FLOTTA_TELEMETRY"] >= 5 * resend

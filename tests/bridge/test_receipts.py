"""Receipt bytes built on the hot path are the contract's encoding of the receipt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flotta.bridge.receipts import receipt_for
from flotta.schemas.codec import encode
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.telemetry import (
    LogLine,
    LogsBatch,
    MetricSample,
    MetricsBatch,
    TelemetryReceipt,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("stream", "sequence"), [("s1", 0), ("buf_A-9", 123456789012)])
def test_receipt_bytes_are_the_contract_encoding(stream: str, sequence: int) -> None:
    metrics = MetricsBatch(
        stream=stream, sequence=sequence, samples=[MetricSample(name="x", value=1, timestamp_ms=1)]
    )
    logs = LogsBatch(
        stream=stream, sequence=sequence, lines=[LogLine(workload="w", time=NOW, line="l")]
    )
    for kind, batch in (("metrics", metrics), ("logs", logs)):
        receipt = receipt_for("dev-1", batch)
        assert receipt is not None
        assert receipt.topic == "flotta/devices/dev-1/receipts"
        expected = TelemetryReceipt(kind=kind, stream=stream, sequences=[sequence])  # type: ignore[arg-type]
        assert receipt.payload == encode(expected)


def test_an_event_with_its_stream_and_sequence_gets_a_receipt() -> None:
    event = DeviceEvent(id="e", time=NOW, reason="Hi", stream="run-1", sequence=7)
    receipt = receipt_for("dev-1", event)
    assert receipt is not None
    assert receipt.topic == "flotta/devices/dev-1/receipts"
    expected = TelemetryReceipt(kind="events", stream="run-1", sequences=[7])
    assert receipt.payload == encode(expected)


def test_no_receipt_for_other_messages() -> None:
    # an event from an agent that does not wait for receipts (no stream and sequence)
    assert receipt_for("dev-1", DeviceEvent(id="e", time=NOW, reason="Hi")) is None
    assert receipt_for("dev-1", DeviceEvent(id="e", time=NOW, reason="Hi", stream="s")) is None

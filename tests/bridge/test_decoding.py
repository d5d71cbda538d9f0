"""The hot-path decoder agrees with the contract's decoder on every input."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotta.bridge.decoding import Batch, Report, decode_report, forwarded
from flotta.schemas.codec import decode_device_payload, encode
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import TELEMETRY_KINDS, DeviceTopic
from flotta.schemas.wire.common import Payload
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport, TelemetryBuffer, UpgradeReport, WorkloadReport
from flotta.schemas.wire.telemetry import LogLine, LogsBatch, MetricSample, MetricsBatch

VALID = encode(
    StatusReport(
        time=datetime(2026, 1, 1, tzinfo=UTC),
        workloads=[WorkloadReport(name="w", phase="Running")],
    )
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
Decoder = Callable[[DeviceTopic, bytes], Report]


def reference(kind: DeviceTopic, data: bytes) -> Report:
    """The contract's verdict, in the form the bridge keeps (a batch: stream and sequence)."""
    payload = decode_device_payload(kind, data)
    if isinstance(payload, MetricsBatch | LogsBatch):
        return Batch(payload.KIND, payload.stream, payload.sequence, b"")  # type: ignore[arg-type]
    return payload


def outcome(function: Decoder, kind: DeviceTopic, data: bytes) -> object:
    try:
        return function(kind, data)
    except PayloadError as exc:
        return type(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    document = json.loads(VALID)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*document, "schemaVersion", "extra", "workloads"]))
        document[key] = draw(json_values)
    if draw(st.booleans()):
        document["schemaVersion"] = draw(st.sampled_from([1, True, 1.0, "1", 2, None]))
    if draw(st.booleans()):
        document.pop("schemaVersion", None)
        document = {"schemaVersion": draw(st.sampled_from([1, True])), **document}
    compact = draw(st.booleans())
    text = json.dumps(document, separators=(",", ":") if compact else None)
    if draw(st.booleans()):  # a second schemaVersion key at the end
        text = text[:-1] + ',"schemaVersion":true}'
    return text.encode()


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(TELEMETRY_KINDS), data=st.one_of(documents(), st.binary(max_size=64)))
def test_fast_decoder_agrees_with_the_contract(kind: DeviceTopic, data: bytes) -> None:
    assert outcome(decode_report, kind, data) == outcome(reference, kind, data)


def test_lax_input_is_refused_with_the_field_named() -> None:
    document = json.loads(VALID)
    document["heartbeatPeriodSeconds"] = "30"  # strict: a string is no number
    data = json.dumps(document).encode()
    with pytest.raises(
        PayloadError, match="heartbeatPeriodSeconds: Input should be a valid integer"
    ):
        decode_report(DeviceTopic.STATUS, data)


def test_snake_case_names_and_times_without_a_zone_are_refused() -> None:
    document = json.loads(VALID)
    document["heartbeat_period_seconds"] = document.pop("heartbeatPeriodSeconds", 60)
    with pytest.raises(PayloadError, match="heartbeat_period_seconds: Extra inputs"):
        decode_report(DeviceTopic.STATUS, json.dumps(document).encode())
    document = json.loads(VALID)
    document["time"] = "2026-01-01T00:00:00"
    with pytest.raises(PayloadError, match="time: Input should have timezone info"):
        decode_report(DeviceTopic.STATUS, json.dumps(document).encode())


def test_a_number_too_long_for_python_is_a_payload_error() -> None:
    document = VALID[:-1] + b',"heartbeatPeriodSeconds":' + b"9" * 100_000 + b"}"
    for kind in (DeviceTopic.STATUS, DeviceTopic.METRICS, DeviceTopic.LOGS, DeviceTopic.EVENTS):
        with pytest.raises(PayloadError):
            decode_report(kind, document)


def test_forwarded_bytes_are_encoded_again_from_the_validated_value() -> None:
    duplicated = VALID[:-1] + b',"appliedVersion":"second"}'
    decoded = decode_report(DeviceTopic.STATUS, duplicated)
    assert json.loads(forwarded(decoded))["appliedVersion"] == "second"
    assert forwarded(decoded).count(b'"appliedVersion"') == 1
    shifted = encode(
        LogsBatch(stream="s", sequence=1, lines=[LogLine(workload="w", time=NOW, line="x")])
    )
    shifted = shifted.replace(b"2026-01-01T00:00:00Z", b"2026-01-01T02:00:00+02:00")
    batch = decode_report(DeviceTopic.LOGS, shifted)
    assert isinstance(batch, Batch)
    assert json.loads(batch.data)["lines"][0]["time"] in (
        "2026-01-01T02:00:00+02:00",
        "2026-01-01T00:00:00Z",
    )


def test_boolean_schema_version_is_refused_on_both_paths() -> None:
    data = VALID[:-1] + b',"schemaVersion":true}'  # the last duplicate key wins
    refused = outcome(decode_report, DeviceTopic.STATUS, data)
    assert refused is not None
    assert not isinstance(refused, Payload)
    assert refused == outcome(reference, DeviceTopic.STATUS, data)


SAMPLES: list[tuple[DeviceTopic, Payload]] = [
    (DeviceTopic.STATUS, StatusReport(time=NOW)),
    (
        DeviceTopic.STATUS,
        StatusReport(
            time=NOW,
            applied_version="v1",
            heartbeat_period_seconds=10,
            workloads=[
                WorkloadReport(name="w", phase="Failed", message="x", since=NOW),
                WorkloadReport(name="v", phase="Running", last_data_upload=NOW),
            ],
            upgrade=UpgradeReport(supported=True, current_commit_id="c", last_upgrade_time=NOW),
            telemetry=TelemetryBuffer(buffered_records=3, dropped_records=1),
            certificate_not_after=NOW,
        ),
    ),
    (DeviceTopic.CONNECTION, ConnectionState(state="offline", time=NOW, reason="lost")),
    (
        DeviceTopic.EVENTS,
        DeviceEvent(id="e1", time=NOW, type="Warning", reason="Failed", workload="w"),
    ),
    (
        DeviceTopic.METRICS,
        MetricsBatch(
            stream="s1",
            sequence=4,
            samples=[MetricSample(name="up", labels={"a": "b"}, value=1.5, timestamp_ms=3)],
        ),
    ),
    (
        DeviceTopic.LOGS,
        LogsBatch(stream="s2", sequence=9, lines=[LogLine(workload="w", time=NOW, line="hi")]),
    ),
]


def test_every_kind_decodes_as_the_contract_does() -> None:
    for kind, payload in SAMPLES:
        data = encode(payload)
        decoded = decode_report(kind, data)
        assert decoded == reference(kind, data)
        if not isinstance(decoded, Batch):
            assert encode(decoded) == data  # the same model, field for field


@st.composite
def mutated(draw: st.DrawFn) -> tuple[DeviceTopic, bytes]:
    kind, payload = draw(st.sampled_from(SAMPLES))
    document = json.loads(encode(payload))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*document, "extra"]))
        if key == "schemaVersion":
            continue
        if draw(st.booleans()) and isinstance(document.get(key), list) and document[key]:
            item = document[key][0]
            if isinstance(item, dict):
                inner = draw(st.sampled_from([*item, "extra"]))
                item[inner] = draw(json_values)
                continue
        document[key] = draw(json_values)
    return kind, json.dumps(document, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(case=mutated())
def test_mutated_payloads_of_every_kind_get_the_contract_verdict(
    case: tuple[DeviceTopic, bytes],
) -> None:
    kind, data = case
    assert outcome(decode_report, kind, data) == outcome(reference, kind, data)


def test_invalid_utf8_in_a_batch_is_refused_as_the_contract_refuses_it() -> None:
    # msgspec raises UnicodeDecodeError (not its DecodeError) for invalid UTF-8 in a string.
    for kind in (DeviceTopic.METRICS, DeviceTopic.LOGS):
        data = b'{"schemaVersion":1,"\x80tream":"s","sequence":1}'
        refused = outcome(decode_report, kind, data)
        assert refused is not None
        assert not isinstance(refused, Payload)
        assert refused == outcome(reference, kind, data)

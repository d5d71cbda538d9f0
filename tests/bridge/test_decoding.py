"""The hot-path decoder agrees with the contract's decoder on every input."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from flotta.bridge.decoding import FAST_PREFIX, decode_report
from flotta.schemas.codec import decode_device_payload, encode
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import TELEMETRY_KINDS, DeviceTopic
from flotta.schemas.wire.common import Payload
from flotta.schemas.wire.status import StatusReport, WorkloadReport

VALID = encode(
    StatusReport(
        time=datetime(2026, 1, 1, tzinfo=UTC),
        workloads=[WorkloadReport(name="w", phase="Running")],
    )
)
Decoder = Callable[[DeviceTopic, bytes], Payload]


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
    assert outcome(decode_report, kind, data) == outcome(decode_device_payload, kind, data)


def test_lax_input_that_the_contract_accepts_is_still_accepted() -> None:
    document = json.loads(VALID)
    document["heartbeatPeriodSeconds"] = "30"  # lax mode turns the string into an int
    data = json.dumps(document).encode()
    decoded = decode_report(DeviceTopic.STATUS, data)
    assert isinstance(decoded, StatusReport)
    assert decoded.heartbeat_period_seconds == 30


def test_encoded_payloads_take_the_fast_path() -> None:
    assert VALID.startswith(FAST_PREFIX)


def test_boolean_schema_version_is_refused_on_both_paths() -> None:
    data = VALID[:-1] + b',"schemaVersion":true}'  # the last duplicate key wins
    refused = outcome(decode_report, DeviceTopic.STATUS, data)
    assert refused is not None
    assert not isinstance(refused, Payload)
    assert refused == outcome(decode_device_payload, DeviceTopic.STATUS, data)

"""The published JSON Schemas (``schemas/json/``) against the models and the reference decoder:
what validates against a schema is what :func:`flotta.schemas.codec.decode` accepts (but for
the limits a schema cannot say), and what the encoder writes validates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from flotta.schemas import json_schemas
from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import PayloadError, PayloadTooLargeError
from flotta.schemas.topics import DeviceTopic, EnrolTopic
from flotta.schemas.wire import (
    ConnectionState,
    DeviceEvent,
    LogLine,
    LogsBatch,
    MetricSample,
    MetricsBatch,
    StatusReport,
    TelemetryReceipt,
    WorkloadReport,
)
from flotta.schemas.wire.common import Payload
from tests.schemas.schema_documents import documents
from tests.schemas.test_codec import sample_desired

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "schemas" / "json"
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
EXPECTED_FILES = {
    "status.schema.json",
    "connection.schema.json",
    "events.schema.json",
    "metrics.schema.json",
    "logs.schema.json",
    "desired.schema.json",
    "receipts.schema.json",
    "csr.schema.json",
    "certificate.schema.json",
    "enrol-request.schema.json",
    "enrol-answer.schema.json",
}
KINDS = list(json_schemas.payloads().items())


def _schema(kind: DeviceTopic | EnrolTopic) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMA_DIR / json_schemas.file_name(kind)).read_text())
    return document


def _validator(kind: DeviceTopic | EnrolTopic) -> Draft202012Validator:
    return Draft202012Validator(_schema(kind), format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_one_file_per_topic_kind_and_up_to_date() -> None:
    assert {path.name for path in SCHEMA_DIR.glob("*.json")} == EXPECTED_FILES
    reference = REPO / "docs" / "payloads.md"
    assert json_schemas.main([str(SCHEMA_DIR), "--check", "--reference", str(reference)]) == 0


def test_the_reference_lists_every_payload_and_field() -> None:
    text = (REPO / "docs" / "payloads.md").read_text()
    for kind, model in KINDS:
        assert f"## {model.__name__}" in text
        assert json_schemas.topic_pattern(kind) in text
        for name in _schema(kind)["properties"]:
            assert f"| `{name}` |" in text, (model.__name__, name)


def test_check_notices_a_stale_file(tmp_path: Path) -> None:
    assert json_schemas.main([str(tmp_path)]) == 0
    path = tmp_path / "status.schema.json"
    path.write_text(path.read_text().replace('"time"', '"when"', 1))
    assert json_schemas.main([str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("kind", [k for k, _ in KINDS], ids=str)
def test_schema_is_valid_draft_2020_12_and_documents_every_field(
    kind: DeviceTopic | EnrolTopic,
) -> None:
    schema = _schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"][0] == "schemaVersion"
    assert schema["properties"]["schemaVersion"]["const"] == 1
    assert schema["additionalProperties"] is False
    undocumented = [
        name for name, prop in schema["properties"].items() if not prop.get("description")
    ]
    assert undocumented == []
    assert schema["description"]


def _examples() -> list[tuple[DeviceTopic | EnrolTopic, Payload]]:
    return [
        (DeviceTopic.DESIRED, sample_desired()),
        (
            DeviceTopic.STATUS,
            StatusReport(
                time=NOW,
                applied_version="sha256:abc",
                workloads=[WorkloadReport(name="counter", phase="Running", since=NOW)],
                certificate_not_after=NOW,
            ),
        ),
        (DeviceTopic.CONNECTION, ConnectionState(state="offline", time=NOW, reason="lost")),
        (
            DeviceTopic.EVENTS,
            DeviceEvent(id="e1", time=NOW, reason="Started", stream="s1", sequence=1),
        ),
        (
            DeviceTopic.METRICS,
            MetricsBatch(
                stream="s1",
                sequence=3,
                samples=[MetricSample(name="up", labels={"a": "b"}, value=1.5, timestamp_ms=1)],
            ),
        ),
        (
            DeviceTopic.LOGS,
            LogsBatch(
                stream="s1",
                sequence=0,
                lines=[LogLine(workload="w", container="c", time=NOW, line="tick")],
            ),
        ),
        (DeviceTopic.RECEIPTS, TelemetryReceipt(kind="logs", stream="s1", sequences=[0, 1])),
    ]


@pytest.mark.parametrize(("kind", "payload"), _examples(), ids=lambda v: str(v)[:20])
def test_what_the_encoder_writes_validates(kind: DeviceTopic, payload: Payload) -> None:
    document = json.loads(encode(payload))
    errors = [e.message for e in _validator(kind).iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(
    ("kind", "document", "broken"),
    [
        (DeviceTopic.CONNECTION, {"state": "online", "time": "2026-12-07T08:00:00Z"}, "version"),
        (
            DeviceTopic.CONNECTION,
            {"schemaVersion": 1, "state": "online", "time": "2026-12-07T08:00:00"},
            "zone",
        ),
        (
            DeviceTopic.STATUS,
            {"schemaVersion": 1, "time": "2026-12-07T08:00:00Z", "applied_version": "x"},
            "snake case",
        ),
        (
            DeviceTopic.METRICS,
            {"schemaVersion": 1, "stream": "s", "sequence": "1", "samples": []},
            "string number",
        ),
        (
            DeviceTopic.RECEIPTS,
            {"schemaVersion": 1, "kind": "metrics", "stream": "s", "sequences": [-1]},
            "negative",
        ),
    ],
)
def test_schema_and_decoder_refuse_the_same_mistakes(
    kind: DeviceTopic, document: dict[str, Any], broken: str
) -> None:
    assert not _validator(kind).is_valid(document), broken
    with pytest.raises(PayloadError):
        decode(json_schemas.payloads()[kind], json.dumps(document).encode())


def _decodes_unless_a_stated_limit(model: type[Payload], document: Any) -> None:
    raw = json.dumps(document).encode()
    refusal = ""
    try:
        decoded = decode(model, raw)
    except PayloadTooLargeError:
        return  # the size limit is in $comment and x-flotta-max-bytes
    except PayloadError as exc:
        refusal = str(exc)
    if refusal:
        # The one other limit the schema cannot say: the time range once read in UTC.
        assert "1970 to 9999" in refusal, f"{document!r} validates but: {refusal}"
        return
    again = json.loads(encode(decoded))
    assert Draft202012Validator(json_schemas.schema_for(_kind_of(model), model)).is_valid(again)


def _kind_of(model: type[Payload]) -> DeviceTopic | EnrolTopic:
    return next(kind for kind, m in KINDS if m is model)


@pytest.mark.parametrize("kind", [k for k, _ in KINDS], ids=str)
def test_every_document_the_schema_allows_is_decoded(kind: DeviceTopic | EnrolTopic) -> None:
    model = json_schemas.payloads()[kind]
    schema = _schema(kind)
    validator = _validator(kind)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(documents(schema))
    def check(document: Any) -> None:
        assume(validator.is_valid(document))  # e.g. no 30 February (format date-time)
        _decodes_unless_a_stated_limit(model, document)

    check()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.timezones(),
    )
)
def test_times_in_any_zone_within_the_range_validate_and_decode(when: datetime) -> None:
    written = when.isoformat()
    document = {"schemaVersion": 1, "state": "online", "time": written}
    assert _validator(DeviceTopic.CONNECTION).is_valid(document), document
    decoded = decode(ConnectionState, json.dumps(document).encode()).time
    assert decoded == datetime.fromisoformat(written)
    assert decoded.utcoffset() == timedelta(0)

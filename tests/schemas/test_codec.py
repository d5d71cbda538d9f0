import contextlib
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotta.schemas.codec import (
    DEVICE_PAYLOADS,
    content_version,
    decode,
    decode_device_payload,
    encode,
    with_version,
)
from flotta.schemas.errors import PayloadError, PayloadTooLargeError, SchemaVersionError
from flotta.schemas.topics import DeviceTopic
from flotta.schemas.wire import (
    ConnectionState,
    DesiredState,
    DesiredWorkload,
    DeviceEvent,
    EnrolmentRequest,
    LogLine,
    LogsBatch,
    MetricSample,
    MetricsBatch,
    StatusReport,
    WorkloadReport,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def sample_desired() -> DesiredState:
    return with_version(
        DesiredState(
            device_id="cam-1",
            namespace="factory",
            workloads=[
                DesiredWorkload(
                    name="counter",
                    namespace="factory",
                    labels={"app": "counter"},
                    pod_spec={"containers": [{"name": "c", "image": "busybox"}]},
                )
            ],
        )
    )


SAMPLES = [
    sample_desired(),
    StatusReport(
        time=NOW,
        applied_version="sha256:1",
        workloads=[WorkloadReport(name="counter", phase="Running", since=NOW)],
    ),
    ConnectionState(state="online", time=NOW, applied_version="sha256:1"),
    DeviceEvent(id="e1", time=NOW, type="Warning", reason="WorkloadFailed", message="exit 1"),
    MetricsBatch(
        stream="s1",
        sequence=7,
        samples=[
            MetricSample(name="node_load1", labels={"device": "cam-1"}, value=0.5, timestamp_ms=1)
        ],
    ),
    LogsBatch(stream="s1", sequence=3, lines=[LogLine(workload="counter", time=NOW, line="tick")]),
    EnrolmentRequest(target_namespace="factory", csr="-----BEGIN CERTIFICATE REQUEST-----"),
]


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: type(p).__name__)
def test_round_trip(payload: object) -> None:
    assert isinstance(
        payload,
        (
            DesiredState,
            StatusReport,
            ConnectionState,
            DeviceEvent,
            MetricsBatch,
            LogsBatch,
            EnrolmentRequest,
        ),
    )
    data = encode(payload)
    assert b'"schemaVersion":1' in data
    assert decode(type(payload), data) == payload


def test_wire_names_are_camel_case() -> None:
    data = encode(SAMPLES[1])
    assert b'"appliedVersion"' in data
    assert b"applied_version" not in data


def test_version_is_a_deterministic_content_hash() -> None:
    first, second = sample_desired(), sample_desired()
    assert first.version == second.version == content_version(first)
    assert encode(first) == encode(second)
    changed = with_version(msgspec.structs.replace(first, namespace="other"))
    assert changed.version != first.version


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(PayloadError, match="surprise"):
        decode(
            ConnectionState,
            b'{"schemaVersion":1,"state":"online","time":"2026-01-01T00:00:00Z","surprise":1}',
        )


def test_other_schema_versions_are_refused_clearly() -> None:
    with pytest.raises(SchemaVersionError, match="schemaVersion 2 is not supported"):
        decode(
            ConnectionState, b'{"schemaVersion":2,"state":"online","time":"2026-01-01T00:00:00Z"}'
        )
    with pytest.raises(SchemaVersionError):
        decode(
            ConnectionState,
            b'{"schemaVersion":true,"state":"online","time":"2026-01-01T00:00:00Z"}',
        )


def test_oversized_payload_is_refused_before_parsing() -> None:
    limit = ConnectionState.MAX_BYTES
    with pytest.raises(PayloadTooLargeError) as caught:
        decode(ConnectionState, b" " * (limit + 1))
    assert caught.value.size == limit + 1


def test_oversized_payload_is_refused_on_encode() -> None:
    lines = [LogLine(workload="w", time=NOW, line="x" * 16000) for _ in range(20)]
    with pytest.raises(PayloadTooLargeError):
        encode(LogsBatch(stream="s", sequence=0, lines=lines))


def test_field_paths_in_errors() -> None:
    with pytest.raises(PayloadError, match=r"workloads\.0\.phase"):
        decode(
            StatusReport,
            b'{"schemaVersion":1,"time":"2026-01-01T00:00:00Z","workloads":[{"name":"w","phase":"Dancing"}]}',
        )


def test_deeply_nested_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        decode(StatusReport, b"[" * 5000 + b"]" * 5000)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(DeviceTopic)), data=st.binary(max_size=2048))
def test_random_bytes_never_escape_the_typed_error(kind: DeviceTopic, data: bytes) -> None:
    with contextlib.suppress(PayloadError):
        decode_device_payload(kind, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(list(DeviceTopic)),
    body=st.dictionaries(st.text(max_size=15), json_values, max_size=6),
)
def test_random_json_objects_never_escape_the_typed_error(
    kind: DeviceTopic, body: dict[str, object]
) -> None:
    import json

    document = {"schemaVersion": 1, **body}
    try:
        decoded = decode_device_payload(kind, json.dumps(document).encode())
    except PayloadError:
        return
    assert isinstance(decoded, DEVICE_PAYLOADS[kind])

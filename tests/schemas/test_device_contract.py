"""The agent's msgspec mirror of the contract (``flotta.agent.contract``) against the reference
pydantic models (``flotta.schemas.wire``): same wire names, required fields, defaults and
limits, and on the same bytes the device never accepts what the reference refuses."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import flotta.agent.contract as device
import flotta.schemas.wire as reference
from flotta.schemas import codec as reference_codec
from flotta.schemas.crd.config import HeartbeatConfiguration as ReferenceHeartbeat
from flotta.schemas.crd.hardware import Cpu, Hardware, Interface, SystemVendor
from flotta.schemas.errors import PayloadError, PayloadTooLargeError, SchemaVersionError
from flotta.schemas.wire.status import TelemetryBuffer as ReferenceTelemetryBuffer

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)

PAIRS: list[tuple[type[msgspec.Struct], type[BaseModel]]] = [
    (device.DesiredState, reference.DesiredState),
    (device.StatusReport, reference.StatusReport),
    (device.ConnectionState, reference.ConnectionState),
    (device.DeviceEvent, reference.DeviceEvent),
    (device.MetricsBatch, reference.MetricsBatch),
    (device.LogsBatch, reference.LogsBatch),
    (device.TelemetryReceipt, reference.TelemetryReceipt),
    (device.EnrolmentRequest, reference.EnrolmentRequest),
    (device.EnrolmentAnswer, reference.EnrolmentAnswer),
    (device.RenewalRequest, reference.RenewalRequest),
    (device.CertificateAnswer, reference.CertificateAnswer),
    (device.Hardware, Hardware),
    (device.HeartbeatConfiguration, ReferenceHeartbeat),
    (device.TelemetryBuffer, ReferenceTelemetryBuffer),
]
PAYLOAD_PAIRS = [(d, r) for d, r in PAIRS if issubclass(d, device.Payload)]

IGNORED_KEYS = {"title", "description", "format", "default"}


def _normal(schema: Any) -> Any:
    """A JSON schema fragment with presentation differences between the two libraries removed."""
    if isinstance(schema, list):
        return [_normal(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _normal(v) for k, v in schema.items() if k not in IGNORED_KEYS}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "enum" in out:
        out["enum"] = sorted(out["enum"], key=repr)
        out.pop("type", None)
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]  # kept by the reference, dropped by the device: both accept
    if "required" in out:
        out["required"] = sorted(set(out["required"]) - {"schemaVersion"})
        if not out["required"]:
            del out["required"]
    return out


def _definitions(schema: dict[str, Any], root: str) -> dict[str, Any]:
    defs = dict(schema.get("$defs", {}))
    if "$ref" not in schema:
        defs[root] = {k: v for k, v in schema.items() if k != "$defs"}
    return {name: _normal(body) for name, body in defs.items()}


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_same_shape_as_the_reference(pair: tuple[type[msgspec.Struct], type[BaseModel]]) -> None:
    mirror, model = pair
    mirrored = _definitions(msgspec.json.schema(mirror), mirror.__name__)
    referenced = _definitions(model.model_json_schema(by_alias=True), model.__name__)
    assert mirrored.keys() == referenced.keys()
    for name in referenced:
        assert mirrored[name] == referenced[name], name


def _mirror_defaults(mirror: type[msgspec.Struct]) -> dict[str, Any]:
    found = {}
    for field in msgspec.structs.fields(mirror):
        if field.default is not msgspec.NODEFAULT:
            found[field.encode_name] = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            found[field.encode_name] = field.default_factory()
    found.pop("schemaVersion", None)
    return found


def _reference_defaults(model: type[BaseModel]) -> dict[str, Any]:
    found = {}
    for name, field in model.model_fields.items():
        if not field.is_required():
            value = field.get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                value = value.model_dump(by_alias=True, mode="json")
            found[field.alias or name] = value
    found.pop("schemaVersion", None)
    return found


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_same_defaults_as_the_reference(pair: tuple[type[msgspec.Struct], type[BaseModel]]) -> None:
    mirror, model = pair
    defaults = _mirror_defaults(mirror)
    expected = _reference_defaults(model)
    assert defaults.keys() == expected.keys()
    for name, value in defaults.items():
        if isinstance(value, msgspec.Struct):
            assert msgspec.convert(expected[name], type(value)) == value, name
        else:
            assert value == expected[name], name


def _sealed() -> reference.SealedData:
    return reference.SealedData(ephemeral_public_key="QUJD", nonce="bm9uY2U=", ciphertext="eHl6")


REFERENCE_SAMPLES: list[Any] = [
    reference_codec.with_version(
        reference.DesiredState(
            device_id="cam-1",
            namespace="factory",
            workloads=[
                reference.DesiredWorkload(
                    name="counter",
                    namespace="factory",
                    labels={"app": "counter"},
                    pod_spec={"containers": [{"name": "c", "image": "busybox", "ports": [1]}]},
                    configmaps=[{"name": "cfg", "data": {"a": "b"}}],
                    secrets=["creds"],
                    image_registry_auth=_sealed(),
                    metrics={"port": 8080, "path": "/metrics", "allowList": ["up"]},
                )
            ],
            secrets=[reference.SealedSecret(name="creds", data=_sealed())],
            configuration={
                "heartbeat": {"periodSeconds": 10, "hardwareProfile": {"scope": "delta"}},
                "os": {"commitID": "abc", "hostedObjectsURL": "http://x"},
                "mounts": [{"device": "/dev/sda1", "folder": "/mnt", "type": "ext4"}],
                "logCollection": {"syslog": {"kind": "syslog", "target": {"address": "a"}}},
            },
        )
    ),
    reference.StatusReport(
        time=NOW,
        applied_version="sha256:1",
        heartbeat_period_seconds=10,
        workloads=[reference.WorkloadReport(name="counter", phase="Running", since=NOW)],
        hardware=reference.HardwareReport(
            scope="full",
            hardware=Hardware(
                hostname="cam-1",
                cpu=Cpu(architecture="x86_64", count=2, flags=["sse"]),
                interfaces=[Interface(name="eth0", ipv4_addresses=["10.0.0.2/24"], mtu=1500)],
                system_vendor=SystemVendor(manufacturer="Acme", virtual=True),
            ),
        ),
        upgrade=reference.UpgradeReport(supported=True, current_commit_id="c1"),
        telemetry=ReferenceTelemetryBuffer(buffered_records=3),
        certificate_not_after=NOW,
    ),
    reference.ConnectionState(state="offline", time=NOW, reason="lost"),
    reference.DeviceEvent(id="e1", time=NOW, type="Warning", reason="WorkloadFailed", message="x"),
    reference.MetricsBatch(
        stream="s1",
        sequence=7,
        samples=[reference.MetricSample(name="up", labels={"a": "b"}, value=1, timestamp_ms=5)],
        dropped=2,
    ),
    reference.LogsBatch(
        stream="s1",
        sequence=3,
        lines=[reference.LogLine(workload="w", container="c", time=NOW, line="tick")],
    ),
    reference.TelemetryReceipt(kind="logs", stream="s1", sequences=[1, 2]),
    reference.EnrolmentRequest(
        target_namespace="factory", csr="PEM", hardware=Hardware(hostname="h")
    ),
    reference.EnrolmentAnswer(status="issued", certificate="PEM", ca_certificate="CA"),
    reference.RenewalRequest(request_id="r1", csr="PEM"),
    reference.CertificateAnswer(request_id="r1", status="refused", message="no"),
]
MIRRORS: dict[type[BaseModel], Any] = {model: mirror for mirror, model in PAIRS}


@pytest.mark.parametrize("sample", REFERENCE_SAMPLES, ids=lambda s: type(s).__name__)
def test_what_the_reference_writes_the_device_reads_and_writes_back(sample: Any) -> None:
    model = type(sample)
    mirrored = device.decode(MIRRORS[model], reference_codec.encode(sample))
    assert reference_codec.decode(model, device.encode(mirrored)) == sample


def test_the_reference_reads_what_the_device_builds() -> None:
    report = device.StatusReport(
        time=NOW,
        workloads=[device.WorkloadReport(name="w", phase="Failed", message="exit 1")],
        telemetry=device.TelemetryBuffer(dropped_records=1),
    )
    decoded = reference_codec.decode(reference.StatusReport, device.encode(report))
    assert decoded.workloads[0].phase == "Failed"
    assert decoded.telemetry is not None
    assert decoded.telemetry.dropped_records == 1
    assert decoded.hardware is None


def test_the_device_refuses_to_send_what_the_reference_would_refuse() -> None:
    bad = device.StatusReport(time=NOW, workloads=[device.WorkloadReport(name="", phase="Running")])
    with pytest.raises(PayloadError, match=r"workloads\[0\]\.name"):
        device.encode(bad)
    lines = [device.LogLine(workload="w", time=NOW, line="x" * 16000) for _ in range(20)]
    with pytest.raises(PayloadTooLargeError):
        device.encode(device.LogsBatch(stream="s", sequence=0, lines=lines))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", PayloadError),
        (b"not json", PayloadError),
        (b"[1, 2]", PayloadError),
        (b'{"state":"online","time":"2026-01-01T00:00:00Z"}', SchemaVersionError),
        (b'{"schemaVersion":2,"state":"online","time":"2026-01-01T00:00:00Z"}', SchemaVersionError),
        (
            b'{"schemaVersion":true,"state":"online","time":"2026-01-01T00:00:00Z"}',
            SchemaVersionError,
        ),
        (b'{"schemaVersion":1,"state":"online","time":"2026-01-01T00:00:00Z","x":1}', PayloadError),
        (b" " * 4096, PayloadTooLargeError),
        (b"[" * 5000 + b"]" * 5000, PayloadError),
        (b'{"schemaVersion":1,"\x80tate":"online","time":"2026-01-01T00:00:00Z"}', PayloadError),
        (b'{"schemaVersion":1,"state":"\xff","time":"2026-01-01T00:00:00Z"}', PayloadError),
    ],
)
def test_bad_bytes_get_the_same_typed_error(data: bytes, error: type[PayloadError]) -> None:
    with pytest.raises(error):
        reference_codec.decode(reference.ConnectionState, data)
    with pytest.raises(error):
        device.decode(device.ConnectionState, data)


# ---- mutations of valid payloads: the device never accepts what the reference refuses ------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "x" * 300, "x" * 5000, "2026-01-01T00:00:00Z", "Running", "delta"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(document: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    mutated = copy.deepcopy(document)
    parent = mutated
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent[last], dict):
        parent[last]["unexpectedField"] = value
    else:
        parent[last] = value
    return mutated


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_device_never_accepts_what_the_reference_refuses(data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(REFERENCE_SAMPLES))
    model = type(sample)
    document = json.loads(reference_codec.encode(sample))
    path = data.draw(st.sampled_from(_paths(document)))
    action = data.draw(st.sampled_from(["delete", "replace", "add"]))
    mutated = _mutate(document, path, action, data.draw(json_values))
    raw = json.dumps(mutated).encode()
    try:
        mirrored = device.decode(MIRRORS[model], raw)
    except PayloadError:
        return  # stricter than the reference (no type coercion) is fine on the device
    accepted = reference_codec.decode(model, raw)
    # Compared in the device's terms: it keeps no unknown hardware fields, the reference does.
    assert device.decode(MIRRORS[model], reference_codec.encode(accepted)) == mirrored
    reference_codec.decode(model, device.encode(mirrored))

"""The generated CRDs: up to date with the models, accept upstream Flotta manifests, and
reject what a device could never run with field paths."""

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flotta.schemas.crd import EdgeDevice, EdgeDeviceSet, EdgeDeviceSignedRequest, EdgeWorkload
from flotta.schemas.crd.registry import KINDS
from flotta.schemas.crd_generator import file_name, main, render

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
SAMPLES = ROOT / "deploy" / "samples"
MODELS = {m.KIND: m for m in (EdgeDevice, EdgeDeviceSet, EdgeWorkload, EdgeDeviceSignedRequest)}


def crd_schema(kind: str) -> dict[str, Any]:
    spec = next(s for s in KINDS if s.kind == kind)
    manifest = yaml.safe_load((CRD_DIR / file_name(spec)).read_text())
    schema: dict[str, Any] = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def errors_of(kind: str, obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(crd_schema(kind))
    return sorted(
        ".".join(str(p) for p in error.absolute_path) + ": " + error.message
        for error in validator.iter_errors(obj)
    )


def test_committed_crds_are_up_to_date() -> None:
    assert main([str(CRD_DIR), "--check"]) == 0, "run `make crds` and commit deploy/crds"
    for spec in KINDS:
        assert (CRD_DIR / file_name(spec)).read_text() == render(spec)


def test_every_kind_has_short_names_printer_columns_and_status() -> None:
    for spec in KINDS:
        manifest = yaml.safe_load(render(spec))
        version = manifest["spec"]["versions"][0]
        assert manifest["spec"]["names"]["shortNames"]
        assert version["subresources"] == {"status": {}}
        paths = [c["jsonPath"] for c in version["additionalPrinterColumns"]]
        assert ".metadata.creationTimestamp" in paths
        schema = version["schema"]["openAPIV3Schema"]
        for path in paths:
            parts = path.lstrip(".").split("[")[0].split(".")
            if parts[0] == "metadata":
                continue
            node = schema
            for part in parts:
                node = node["properties"][part]  # a column must point at a real field


def _no_refs_or_unions(node: Any) -> None:
    if isinstance(node, dict):
        assert "$ref" not in node
        assert "anyOf" not in node
        assert "allOf" not in node
        if "properties" in node:
            assert "additionalProperties" not in node
        for value in node.values():
            _no_refs_or_unions(value)
    elif isinstance(node, list):
        for value in node:
            _no_refs_or_unions(value)


def test_schemas_are_structural() -> None:
    for spec in KINDS:
        _no_refs_or_unions(crd_schema(spec.kind))


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Paths of the properties under ``node`` (recursively, through arrays and maps) that
    carry no description."""
    missing = []
    for name, child in node.get("properties", {}).items():
        where = f"{path}.{name}"
        description = child.get("description")
        if not isinstance(description, str) or not description.strip():
            missing.append(where)
        missing += _undescribed(child, where)
    if isinstance(node.get("items"), dict):
        missing += _undescribed(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        missing += _undescribed(node["additionalProperties"], f"{path}{{}}")
    return missing


@pytest.mark.parametrize("kind", [spec.kind for spec in KINDS])
def test_every_field_has_a_plain_description(kind: str) -> None:
    """What `kubectl explain` prints: every property, spec and status and every nested
    type, is described in one paragraph of plain text."""
    schema = crd_schema(kind)
    assert schema["description"]
    assert {"spec", "status"} <= set(schema["properties"])
    assert _undescribed(schema, kind) == []

    def texts(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["description"]] if isinstance(node.get("description"), str) else []
            return own + [t for value in node.values() for t in texts(value)]
        if isinstance(node, list):
            return [t for value in node for t in texts(value)]
        return []

    for text in texts(schema):
        assert "``" not in text, text
        assert text == " ".join(text.split()), text  # one paragraph


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_upstream_style_samples_validate_against_crd_and_model(sample: Path) -> None:
    obj = yaml.safe_load(sample.read_text())
    assert errors_of(obj["kind"], obj) == []
    model = MODELS[obj["kind"]].model_validate(obj)
    assert model.metadata.name == obj["metadata"]["name"]


def test_upstream_field_names_survive_a_model_round_trip() -> None:
    obj = yaml.safe_load((SAMPLES / "edgedevice.yaml").read_text())
    device = EdgeDevice.model_validate(obj)
    spec = device.spec.to_api()
    assert spec["osInformation"]["commitID"] == "8f1c2d9e"
    assert spec["osInformation"]["hostedObjectsURL"] == "http://images.example/repo"
    assert spec["heartbeat"]["hardwareProfile"]["scope"] == "full"


INVALID = [
    (
        "EdgeDevice",
        {"spec": {"heartbeat": {"periodSeconds": 0}}},
        "spec.heartbeat.periodSeconds: 0 is less than the minimum of 1",
    ),
    (
        "EdgeDevice",
        {"spec": {"heartbeat": {"hardwareProfile": {"scope": "partial"}}}},
        "spec.heartbeat.hardwareProfile.scope: 'partial' is not one of ['full', 'delta']",
    ),
    (
        "EdgeWorkload",
        {
            "spec": {
                "type": "vm",
                "device": "d",
                "pod": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
            }
        },
        "spec.type: 'vm' is not one of ['pod']",
    ),
    (
        "EdgeWorkload",
        {"spec": {"device": "d", "pod": {"spec": {"containers": []}}}},
        "spec.pod.spec.containers: [] should be non-empty",
    ),
    (
        "EdgeWorkload",
        {
            "spec": {
                "device": "d",
                "pod": {"spec": {"containers": [{"name": "Web_1", "image": "i"}]}},
            }
        },
        "spec.pod.spec.containers.0.name: 'Web_1' does not match",
    ),
    (
        "EdgeWorkload",
        {
            "spec": {
                "device": "d",
                "pod": {
                    "spec": {
                        "containers": [
                            {"name": "c", "image": "i", "ports": [{"containerPort": 70000}]}
                        ]
                    }
                },
            }
        },
        "spec.pod.spec.containers.0.ports.0.containerPort: 70000 is greater than the maximum of 65535",
    ),
    (
        "EdgeDeviceSignedRequest",
        {"spec": {"approved": True}},
        "spec: 'targetNamespace' is a required property",
    ),
]


@pytest.mark.parametrize(("kind", "body", "expected"), INVALID)
def test_invalid_manifests_are_rejected_with_field_paths(
    kind: str, body: dict[str, Any], expected: str
) -> None:
    obj = {
        "apiVersion": "management.project-flotta.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x"},
        **body,
    }
    errors = errors_of(kind, obj)
    assert any(error.startswith(expected) for error in errors), errors

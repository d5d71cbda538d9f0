"""A wire struct held by a CRD model: validated by msgspec, dumped in API form, described in
the generated CRD from the struct's own docstrings; the hardware inventory is defined once."""

from typing import Annotated, Any

import msgspec
import pytest
import yaml
from pydantic import ValidationError

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.registry import KINDS
from flotta.schemas.crd.wire_field import WireField
from flotta.schemas.crd_generator import render
from flotta.schemas.struct_schemas import structs_in
from flotta.schemas.wire.common import ApiStruct, Count
from flotta.schemas.wire.hardware import Hardware


class Probe(ApiStruct, frozen=True, kw_only=True):
    """What a sensor measures."""

    sample_rate: Count = 0
    """Samples a second."""
    unit: str = ""
    """The unit of a sample."""


class Sensor(ApiStruct, frozen=True, kw_only=True):
    """One sensor of the device."""

    name: str = ""
    """The sensor's name."""
    probe: Probe | None = None
    """What it measures."""


class Holder(ApiModel):
    """A resource fragment that stores a sensor."""

    sensor: Annotated[Sensor, WireField()] | None = None
    """The sensor, as the device reported it."""
    kept: Annotated[Sensor, WireField(keep_unknown_fields=True)] | None = None
    """The same, keeping fields the struct does not know."""


def test_a_wire_field_holds_the_struct_and_dumps_the_api_form() -> None:
    holder = Holder.model_validate(
        {"sensor": {"name": "t1", "probe": {"sampleRate": 4}, "unknown": True}}
    )
    assert holder.sensor == Sensor(name="t1", probe=Probe(sample_rate=4))
    assert Holder(sensor=Sensor(name="t1")).to_api() == {"sensor": {"name": "t1"}}
    assert holder.to_api() == {
        "sensor": {"name": "t1", "probe": {"sampleRate": 4, "unit": ""}},
    }


def test_a_wire_field_refuses_what_the_struct_refuses_at_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        Holder.model_validate({"sensor": {"probe": {"sampleRate": -1}}})
    error = raised.value.errors()[0]
    assert error["loc"] == ("sensor",)
    assert "$.probe.sampleRate" in error["msg"]


def _property(schema: dict[str, Any], name: str) -> dict[str, Any]:
    node: dict[str, Any] = schema["properties"][name]
    return next(option for option in node["anyOf"] if option.get("type") != "null") | {
        key: value for key, value in node.items() if key != "anyOf"
    }


def test_a_wire_field_is_described_from_the_struct_docstrings() -> None:
    schema = Holder.model_json_schema(by_alias=True)
    sensor = _property(schema, "sensor")
    assert sensor["description"] == "The sensor, as the device reported it."
    assert sensor["properties"]["name"]["description"] == "The sensor's name."
    probe = sensor["properties"]["probe"]["anyOf"][0]
    assert "$ref" not in probe  # a CRD schema has no references
    assert probe["properties"]["sampleRate"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 9007199254740991,
        "default": 0,
        "description": "Samples a second.",
    }
    assert "additionalProperties" not in sensor
    kept = _property(schema, "kept")
    assert kept["additionalProperties"] is True
    assert kept["properties"]["probe"]["anyOf"][0]["additionalProperties"] is True


def _crd_node(kind: str, *path: str) -> dict[str, Any]:
    spec = next(s for s in KINDS if s.kind == kind)
    manifest = yaml.safe_load(render(spec))
    node: dict[str, Any] = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for step in path:
        node = node["items"] if step == "items" else node["properties"][step]
    return node


def _struct_nodes(
    struct: type[msgspec.Struct], node: dict[str, Any], path: str
) -> list[tuple[str, type[msgspec.Struct], dict[str, Any]]]:
    found = [(path, struct, node)]
    for field in msgspec.structs.fields(struct):
        child = node["properties"][field.encode_name]
        for inner in structs_in(field.type):
            target = child["items"] if child.get("type") == "array" else child
            found += _struct_nodes(inner, target, f"{path}.{field.encode_name}")
    return found


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("EdgeDevice", ("status", "hardware")),
        ("EdgeDeviceSignedRequest", ("spec", "features", "hardware")),
    ],
)
def test_the_crds_store_the_hardware_struct_field_for_field(
    kind: str, path: tuple[str, ...]
) -> None:
    """Upstream's HardwareInfo names, from the one struct: each section has exactly the
    struct's fields, and the API server keeps what a newer device adds."""
    for where, struct, node in _struct_nodes(Hardware, _crd_node(kind, *path), ".".join(path)):
        names = [field.encode_name for field in msgspec.structs.fields(struct)]
        assert list(node["properties"]) == names, where
        assert node["x-kubernetes-preserve-unknown-fields"] is True, where


def test_an_edge_device_reads_its_hardware_into_the_wire_struct() -> None:
    device = EdgeDevice.model_validate(
        {
            "metadata": {"name": "d1", "namespace": "lab"},
            "status": {"hardware": {"hostname": "h1", "cpu": {"count": 2, "future": 1}}},
        }
    )
    assert device.status is not None
    hardware = device.status.hardware
    assert isinstance(hardware, Hardware)
    assert hardware.cpu is not None
    assert hardware.cpu.count == 2
    assert device.to_api()["status"]["hardware"]["cpu"]["count"] == 2

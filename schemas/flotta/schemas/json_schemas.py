"""Publish the wire contract as JSON Schemas (draft 2020-12), one file per topic kind.

``python -m flotta.schemas.json_schemas OUT_DIR`` writes ``schemas/json/`` from the structs in
:mod:`flotta.schemas.wire` (msgspec's schema, with each field's docstring, read from the
source, as its description); ``--check`` exits non-zero when the files differ from what the
structs give. The schemas describe what a sender must send; the reference decoder
(:func:`flotta.schemas.codec.decode`) accepts exactly the payloads that validate, except
for what JSON Schema cannot say (listed under ``$comment`` in every file): a size limit in
bytes, and the time range counted in UTC.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from flotta.schemas.codec import DEVICE_PAYLOADS, ENROL_PAYLOADS
from flotta.schemas.struct_schemas import described_components
from flotta.schemas.topics import TOPIC_ROOT, DeviceTopic, EnrolTopic
from flotta.schemas.wire.common import SCHEMA_VERSION_DESCRIPTION, Payload

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:flotta:contract:v1:"

# RFC 3339 with a zone, in the years 1970 to 9998 (the decoder checks the range again in UTC).
TIME_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)

# What the topic table of docs/contract.md says about each kind.
DELIVERY: dict[str, str] = {
    DeviceTopic.DESIRED: "operator to device, QoS 1, retained",
    DeviceTopic.STATUS: "device to bridge, QoS 1",
    DeviceTopic.CONNECTION: "device birth and broker will, QoS 1, retained",
    DeviceTopic.EVENTS: "device to bridge, QoS 1",
    DeviceTopic.METRICS: "device to bridge, QoS 1",
    DeviceTopic.LOGS: "device to bridge, QoS 1",
    DeviceTopic.RECEIPTS: "bridge to device, QoS 1",
    DeviceTopic.CSR: "device to operator, QoS 1",
    DeviceTopic.CERTIFICATE: "operator to device, QoS 1",
    EnrolTopic.REQUEST: "bootstrap device to operator, on the enrolment broker, QoS 1",
    EnrolTopic.ANSWER: "operator to bootstrap device, on the enrolment broker, QoS 1, retained",
}


def file_name(kind: DeviceTopic | EnrolTopic) -> str:
    prefix = "enrol-" if isinstance(kind, EnrolTopic) else ""
    return f"{prefix}{kind.value}.schema.json"


def topic_pattern(kind: DeviceTopic | EnrolTopic) -> str:
    middle = "enrol" if isinstance(kind, EnrolTopic) else "devices"
    return f"{TOPIC_ROOT}/{middle}/{{id}}/{kind.value}"


def payloads() -> dict[DeviceTopic | EnrolTopic, type[Payload]]:
    kinds: dict[DeviceTopic | EnrolTopic, type[Payload]] = {}
    for device_kind, model in DEVICE_PAYLOADS.items():
        kinds[device_kind] = model
    for enrol_kind, model in ENROL_PAYLOADS.items():
        kinds[enrol_kind] = model
    return kinds


def _tidy(node: Any) -> Any:
    """Drop generated titles, and pin times to RFC 3339 with a zone."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _tidy(value) for key, value in node.items() if key != "title"}
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: _tidy(prop) for name, prop in node["properties"].items()}
    if out.get("format") == "date-time":
        out["pattern"] = TIME_PATTERN
    if isinstance(out.get("description"), str):
        out["description"] = _plain(out["description"])
    return out


def _plain(docstring: str) -> str:
    """One paragraph, Markdown code spans: how JSON Schema tools show a description."""
    return " ".join(docstring.replace("``", "`").split())


def _referenced(node: Any, components: dict[str, Any], into: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _referenced(item, components, into)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in into:
                into[name] = components[name]
                _referenced(components[name], components, into)
        for value in node.values():
            _referenced(value, components, into)


def schema_for(kind: DeviceTopic | EnrolTopic, model: type[Payload]) -> dict[str, Any]:
    _, components = described_components(payloads().values())
    root = json.loads(json.dumps(components[model.__name__]))
    defs: dict[str, Any] = {}
    _referenced(root, components, defs)
    properties = root["properties"]
    properties["schemaVersion"] = {
        "const": 1,
        "description": SCHEMA_VERSION_DESCRIPTION,
        "type": "integer",
    }
    root["required"] = [
        "schemaVersion",
        *(name for name in root.get("required", []) if name != "schemaVersion"),
    ]
    generated = _tidy(root)
    if defs:
        generated["$defs"] = _tidy({name: defs[name] for name in sorted(defs)})
    topic = topic_pattern(kind)
    header = {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}{file_name(kind).removesuffix('.schema.json')}",
        "title": f"{model.__name__} ({topic})",
        "$comment": (
            f"Contract v1; {DELIVERY[kind]}. Not expressible here, checked by receivers: the "
            f"encoded payload is at most {model.MAX_BYTES} bytes, and times lie between "
            "1970-01-01 and 9999-01-01 once read in UTC. Generated from flotta.schemas.wire "
            "by python -m flotta.schemas.json_schemas; see docs/contract.md."
        ),
        "x-flotta-topic": topic,
        "x-flotta-max-bytes": model.MAX_BYTES,
    }
    return {**header, **generated}


def render(kind: DeviceTopic | EnrolTopic, model: type[Payload]) -> str:
    return json.dumps(schema_for(kind, model), indent=2, ensure_ascii=False) + "\n"


# ---- the field reference (docs/payloads.md) ------------------------------------------------


def _type_of(node: dict[str, Any]) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in node:
        options = [_type_of(option) for option in node["anyOf"] if option.get("type") != "null"]
        nullable = any(option.get("type") == "null" for option in node["anyOf"])
        return " or ".join(options) + (" or null" if nullable else "")
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in node["enum"])
    kind = node.get("type")
    if kind == "array":
        text = f"array of {_type_of(node.get('items', {}))}"
        return text + _bounds(node, "minItems", "maxItems", "items")
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"object of {_type_of(extra)}" + _bounds(
                node, "minProperties", "maxProperties", "keys"
            )
        return "object"
    if kind == "string":
        if node.get("format") == "date-time":
            return "time (RFC 3339 with a zone)"
        text = "string" + _bounds(node, "minLength", "maxLength", "characters")
        if "pattern" in node:
            text += f", matching `{node['pattern']}`"
        return text
    if kind == "integer":
        return "integer" + _bounds(node, "minimum", "maximum", "")
    if kind == "number":
        return "number (finite)"
    if kind == "boolean":
        return "boolean"
    return "any JSON value"


def _bounds(node: dict[str, Any], low_key: str, high_key: str, unit: str) -> str:
    low, high = node.get(low_key), node.get(high_key)
    unit = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f", {low} to {high}{unit}"
    if low is not None:
        return f", at least {low}{unit}"
    if high is not None:
        return f", at most {high}{unit}"
    return ""


def _field_table(node: dict[str, Any]) -> list[str]:
    required = set(node.get("required", []))
    rows = ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
    for name, prop in node.get("properties", {}).items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        meaning = prop.get("description", "").replace("|", "\\|")
        kind = _type_of(prop).replace("|", "\\|")
        yes = "yes" if name in required else ""
        rows.append(f"| `{name}` | {kind} | {yes} | {default} | {meaning} |")
    if node.get("additionalProperties") is True:
        rows.append("| (any other) | any JSON value | | | kept as sent |")
    return rows


def reference() -> str:
    """Every payload's fields, from the same schemas: the page docs/contract.md links."""
    lines = [
        "# Contract v1: payload reference",
        "",
        "Generated from `flotta.schemas.wire` by `make json-schemas` (do not edit by hand). The",
        "rules every payload follows (strict decoding, times, integer bounds) and the topics,",
        "sessions and streams are in [contract.md](contract.md). The JSON Schemas in",
        "[`schemas/json/`](../schemas/json/) say the same, for validators.",
        "",
    ]
    shared: dict[str, dict[str, Any]] = {}
    for kind, model in payloads().items():
        schema = schema_for(kind, model)
        name = file_name(kind)
        lines += [
            f"## {model.__name__}",
            "",
            f"`{topic_pattern(kind)}`: {DELIVERY[kind]}; at most {model.MAX_BYTES} bytes;",
            f"schema [`{name}`](../schemas/json/{name}).",
            "",
            schema.get("description", ""),
            "",
            *_field_table(schema),
            "",
        ]
        shared.update(schema.get("$defs", {}))
    lines += ["## Shared types", ""]
    for def_name in sorted(shared):
        node = shared[def_name]
        lines += [f"### {def_name}", ""]
        if node.get("description"):
            lines += [node["description"], ""]
        lines += [*_field_table(node), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotta.schemas.json_schemas")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--reference", type=Path, help="also write the Markdown field reference")
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for kind, model in payloads().items():
        path = args.out_dir / file_name(kind)
        text = render(kind, model)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if args.reference is not None:
        text = reference()
        if not args.check:
            args.reference.write_text(text)
        elif not args.reference.exists() or args.reference.read_text() != text:
            stale.append(str(args.reference))
    if stale:
        print("out of date (run make json-schemas): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

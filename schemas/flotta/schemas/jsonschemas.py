"""Publish the wire contract as JSON Schemas (draft 2020-12), one file per topic kind.

``python -m flotta.schemas.jsonschemas OUT_DIR`` writes ``schemas/json/`` from the models in
:mod:`flotta.schemas.wire`; ``--check`` exits non-zero when the files differ from what the
models give. The schemas describe what a sender must send; the reference decoder
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
from flotta.schemas.topics import TOPIC_ROOT, DeviceTopic, EnrolTopic
from flotta.schemas.wire.common import Payload

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
    """Drop pydantic's generated property titles, and pin times to RFC 3339 with a zone."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _tidy(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        for prop in out["properties"].values():
            if isinstance(prop, dict):
                prop.pop("title", None)
    if out.get("format") == "date-time":
        out["pattern"] = TIME_PATTERN
    if isinstance(out.get("description"), str):
        out["description"] = _plain(out["description"])
    return out


def _plain(docstring: str) -> str:
    """One paragraph, Markdown code spans: how JSON Schema tools show a description."""
    return " ".join(docstring.replace("``", "`").split())


def schema_for(kind: DeviceTopic | EnrolTopic, model: type[Payload]) -> dict[str, Any]:
    generated = _tidy(model.model_json_schema(by_alias=True, mode="validation"))
    version = generated["properties"]["schemaVersion"]
    version.pop("default", None)
    generated["required"] = ["schemaVersion", *generated.get("required", [])]
    topic = topic_pattern(kind)
    header = {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}{file_name(kind).removesuffix('.schema.json')}",
        "title": f"{model.__name__} ({topic})",
        "$comment": (
            f"Contract v1; {DELIVERY[kind]}. Not expressible here, checked by receivers: the "
            f"encoded payload is at most {model.MAX_BYTES} bytes, and times lie between "
            "1970-01-01 and 9999-01-01 once read in UTC. Generated from flotta.schemas.wire "
            "by python -m flotta.schemas.jsonschemas; see docs/contract.md."
        ),
        "x-flotta-topic": topic,
        "x-flotta-max-bytes": model.MAX_BYTES,
    }
    generated.pop("title", None)
    return {**header, **generated}


def render(kind: DeviceTopic | EnrolTopic, model: type[Payload]) -> str:
    return json.dumps(schema_for(kind, model), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotta.schemas.jsonschemas")
    parser.add_argument("out_dir", type=Path)
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
    if stale:
        print("out of date (run make json-schemas): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

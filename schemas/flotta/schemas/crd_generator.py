"""Generate the CustomResourceDefinition manifests from the pydantic models.

``python -m flotta.schemas.crd_generator OUT_DIR`` writes one YAML file per kind; ``--check`` exits
non-zero when the files in OUT_DIR differ from what the models give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.crd.registry import KINDS, KindSpec

# JSON-schema keywords that a structural Kubernetes schema keeps as they are.
KEPT_KEYWORDS = {
    "type",
    "format",
    "description",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
}


INT_OR_STRING = "x-kubernetes-int-or-string"


def plain(docstring: str) -> str:
    """One paragraph of plain text, ``x`` as `x`: what ``kubectl explain`` shows well."""
    return " ".join(docstring.replace("``", "`").split())


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one node of a pydantic JSON schema into a structural openAPIV3Schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {options} in a structural schema")
        outer = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural({**options[0], **outer}, defs)

    node: dict[str, Any] = {k: v for k, v in schema.items() if k in KEPT_KEYWORDS}
    if schema.get(INT_OR_STRING):
        # Kubernetes' int-or-string (a count or a percentage): no type, no anyOf.
        node[INT_OR_STRING] = True
        if "description" in node:
            node["description"] = plain(node["description"])
        return node
    if "description" in node:
        node["description"] = plain(node["description"])
    if "const" in schema:
        node["enum"] = [schema["const"]]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if schema.get("default"):
        # Only defaults that say something: empty strings, zeros and false would only bloat
        # every stored object.
        node["default"] = schema["default"]

    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        node["type"] = "object"
        properties = schema.get("properties", {})
        if properties:
            node["properties"] = {
                name: structural(child, defs) for name, child in properties.items()
            }
            if schema.get("required"):
                node["required"] = list(schema["required"])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            if properties:
                node["x-kubernetes-preserve-unknown-fields"] = True
            else:
                node["additionalProperties"] = structural(extra, defs)
        elif extra is True or (not properties and extra is None):
            node["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        node["items"] = structural(schema.get("items", {}), defs)
    elif kind is None and "enum" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    return node


API_VERSION_DESCRIPTION = (
    "The versioned schema of this object: management.project-flotta.io/v1alpha1."
)
KIND_DESCRIPTION = "The kind of this object, as the API server names it."
METADATA_DESCRIPTION = (
    "Standard Kubernetes object metadata: name, namespace, labels, annotations and the like."
)


def _node_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for step in path:
        node = node["items"] if step == "items" else node["properties"][step]
    return node


def object_schema(spec: KindSpec) -> dict[str, Any]:
    raw = spec.model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    root: dict[str, Any] = {
        "type": "object",
        "description": plain(spec.model.__doc__ or spec.kind),
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DESCRIPTION},
            "kind": {"type": "string", "description": KIND_DESCRIPTION},
            "metadata": {"type": "object", "description": METADATA_DESCRIPTION},
            "spec": structural(raw["properties"]["spec"], defs),
            "status": structural(raw["properties"]["status"], defs),
        },
    }
    if spec.required:
        root["required"] = list(spec.required)
    root["properties"]["spec"].pop("default", None)
    root["properties"]["status"].pop("default", None)
    for rule in spec.rules:
        node = _node_at(root, rule.path)
        node.setdefault("x-kubernetes-validations", []).append(
            {"rule": rule.rule, "message": rule.message}
        )
    return root


def crd_manifest(spec: KindSpec) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{spec.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": spec.kind,
                "listKind": f"{spec.kind}List",
                "plural": spec.plural,
                "singular": spec.singular,
                "shortNames": list(spec.short_names),
                "categories": ["flotta"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_api() for c in spec.columns],
                    "schema": {"openAPIV3Schema": object_schema(spec)},
                }
            ],
        },
    }


def render(spec: KindSpec) -> str:
    header = (
        "# Generated by `python -m flotta.schemas.crd_generator` from flotta.schemas; "
        "do not edit.\n"
    )
    return header + yaml.safe_dump(crd_manifest(spec), sort_keys=False, width=100)


def file_name(spec: KindSpec) -> str:
    return f"{GROUP}_{spec.plural}.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if the files are out of date")
    args = parser.parse_args(argv)
    stale = []
    for spec in KINDS:
        path = args.out_dir / file_name(spec)
        text = render(spec)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The test CRD the contract tests install: group example.flotta.io, kind Widget."""

from __future__ import annotations

import time
import uuid
from typing import Any

GROUP = "example.flotta.io"
VERSION = "v1"
PLURAL = "widgets"


def widget_crd(plural: str = PLURAL, kind: str = "Widget") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": [f"{kind.lower()[:2]}x"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "description": "What the widget should be.",
                                    "required": ["color"],
                                    "properties": {
                                        "color": {
                                            "type": "string",
                                            "description": "The colour it is painted.",
                                            "enum": ["red", "green", "blue"],
                                        },
                                        "size": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 10,
                                            "default": 3,
                                        },
                                        "name": {
                                            "type": "string",
                                            "maxLength": 8,
                                            "pattern": "^[a-z]+$",
                                        },
                                        "options": {
                                            "type": "object",
                                            "properties": {
                                                "fast": {"type": "boolean", "default": False},
                                            },
                                        },
                                        "extra": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                        "tags": {
                                            "type": "array",
                                            "items": {"type": "string"},
                                            "maxItems": 3,
                                        },
                                        "aliases": {
                                            "type": "array",
                                            "items": {"type": "string"},
                                            "x-kubernetes-list-type": "set",
                                        },
                                        "ports": {
                                            "type": "array",
                                            "x-kubernetes-list-type": "map",
                                            "x-kubernetes-list-map-keys": ["name"],
                                            "items": {
                                                "type": "object",
                                                "required": ["name"],
                                                "properties": {
                                                    "name": {"type": "string"},
                                                    "port": {"type": "integer"},
                                                },
                                            },
                                        },
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "phase": {"type": "string"},
                                        "observedGeneration": {"type": "integer"},
                                        "conditions": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "required": ["type", "status"],
                                                "properties": {
                                                    "type": {"type": "string"},
                                                    "status": {"type": "string"},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def install_widget_crd(api_client: Any, plural: str = PLURAL, kind: str = "Widget") -> None:
    """Create the CRD (if absent) and wait until its resource is served."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(
            client.V1CustomResourceDefinition.model_validate(widget_crd(plural, kind))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    custom = client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + 30
    while True:
        try:
            custom.list_namespaced_custom_object(GROUP, VERSION, "default", plural)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def widget(object_name: str | None = None, color: str = "red", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": object_name or f"w-{uuid.uuid4().hex[:8]}"},
        "spec": {"color": color, **spec},
    }

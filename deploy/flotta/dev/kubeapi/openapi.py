"""A minimal OpenAPI v3 index: enough for kubectl to see that the server validates fields.

kubectl reads ``/openapi/v3`` and the group-version document to decide whether to send
``fieldValidation=Strict``; each resource gets a PATCH operation that declares the query
parameter. Schemas are not published (``kubectl explain`` does not work).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flotta.dev.kubeapi.resources import Registry, ResourceType


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _item_path(resource: ResourceType) -> str:
    prefix = "/" + _gv_path(resource.group, resource.version)
    if resource.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{resource.plural}/{{name}}"
    return f"{prefix}/{resource.plural}/{{name}}"


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = [r for r in registry.all() if r.group == group and r.version == version]
    if not resources:
        return None
    paths: dict[str, Any] = {}
    for resource in resources:
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "OK"}},
        }
        paths[_item_path(resource)] = {"patch": operation}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def root_document(registry: Registry) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for group, versions in registry.groups().items():
        for version in versions:
            document = group_version_document(registry, group, version)
            digest = (
                hashlib.sha256(json.dumps(document, sort_keys=True).encode())
                .hexdigest()[:32]
                .upper()
            )
            path = _gv_path(group, version)
            entries[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": entries}

"""OpenAPI v3 documents: the index at ``/openapi/v3`` and one document per group-version.

kubectl reads them for two things. ``apply``/``patch`` look for the ``fieldValidation``
query parameter on a resource's PATCH operation to decide whether to send
``fieldValidation=Strict``. ``explain`` finds the kind on a resource path's
``x-kubernetes-group-version-kind``, then the component schema that carries the same GVK,
and walks its properties (following ``$ref`` and single-element ``allOf``).

A custom resource's schema is its CRD's ``openAPIV3Schema``, named as kube-apiserver names
it (``io.project-flotta.management.v1alpha1.EdgeDevice``: the group reversed, the version,
the kind), with ``apiVersion``, ``kind`` and ``metadata`` (a reference to ObjectMeta)
filled in. The meta/v1 schemas it refers to are a small subset of Kubernetes' own. Built-in
kinds publish no schema (``kubectl explain configmap`` does not work).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from flotta.dev.kubeapi.resources import Registry, ResourceType

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_REF = "#/components/schemas/"
_DOCS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"


def schema_name(group: str, version: str, kind: str) -> str:
    """``management.project-flotta.io`` v1alpha1 EdgeDevice ->
    ``io.project-flotta.management.v1alpha1.EdgeDevice``."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _ref(name: str, description: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": _REF + name}], "description": description}


def _string(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


def _strings_map(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
        "description": description,
    }


_TIME = {"type": "string", "format": "date-time"}

# The meta/v1 schemas a custom resource's document refers to. The list annotations are the
# ones server-side apply honours on metadata (finalizers a set, owners keyed by uid).
META_SCHEMAS: dict[str, dict[str, Any]] = {
    f"{META}.Time": {**_TIME, "description": "An RFC 3339 date and time, in UTC."},
    f"{META}.FieldsV1": {
        "type": "object",
        "description": "A set of fields in the fieldset encoding of server-side apply.",
    },
    f"{META}.OwnerReference": {
        "type": "object",
        "description": "An object this one depends on; it goes when its last owner goes.",
        "required": ["apiVersion", "kind", "name", "uid"],
        "properties": {
            "apiVersion": _string("API version of the owner."),
            "kind": _string("Kind of the owner."),
            "name": _string("Name of the owner."),
            "uid": _string("UID of the owner."),
            "controller": {"type": "boolean", "description": "The owner is the controller."},
            "blockOwnerDeletion": {
                "type": "boolean",
                "description": "Foreground deletion of the owner waits for this object.",
            },
        },
        "x-kubernetes-map-type": "atomic",
    },
    f"{META}.ManagedFieldsEntry": {
        "type": "object",
        "description": "The fields one manager owns after one kind of operation.",
        "properties": {
            "manager": _string("The name of the manager (the fieldManager of its writes)."),
            "operation": _string("Apply or Update."),
            "apiVersion": _string("The version of the object the fields are described in."),
            "time": _ref(f"{META}.Time", "When the manager last changed a field."),
            "fieldsType": _string("How the fields are encoded: FieldsV1."),
            "fieldsV1": _ref(f"{META}.FieldsV1", "The fields the manager owns."),
            "subresource": _string("The subresource written through, if any."),
        },
    },
    f"{META}.ObjectMeta": {
        "type": "object",
        "description": "Metadata every persisted object has.",
        "properties": {
            "name": _string("Unique name within the namespace; cannot be updated."),
            "generateName": _string(
                "A prefix the server completes into a unique name when name is not given."
            ),
            "namespace": _string("The namespace of the object; empty for cluster-scoped kinds."),
            "uid": _string("Unique identifier the server gives the object when it is created."),
            "resourceVersion": _string(
                "Opaque version of this state of the object, for optimistic concurrency and"
                f" watches. More info: {_DOCS}#concurrency-control-and-consistency"
            ),
            "generation": {
                "type": "integer",
                "format": "int64",
                "description": "Sequence number of changes to the desired state (spec).",
            },
            "creationTimestamp": _ref(f"{META}.Time", "When the server created the object."),
            "deletionTimestamp": _ref(
                f"{META}.Time", "When deletion was requested; set by the server."
            ),
            "deletionGracePeriodSeconds": {
                "type": "integer",
                "format": "int64",
                "description": "Seconds the object is given to terminate.",
            },
            "labels": _strings_map("String keys and values for selecting objects."),
            "annotations": _strings_map("String keys and values for tools and people."),
            "finalizers": {
                "type": "array",
                "items": {"type": "string", "default": ""},
                "description": "Conditions to clear before a deleted object is removed.",
                "x-kubernetes-list-type": "set",
            },
            "ownerReferences": {
                "type": "array",
                "items": {"allOf": [{"$ref": f"{_REF}{META}.OwnerReference"}], "default": {}},
                "description": "Objects this one depends on.",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["uid"],
                "x-kubernetes-patch-merge-key": "uid",
                "x-kubernetes-patch-strategy": "merge",
            },
            "managedFields": {
                "type": "array",
                "items": {"allOf": [{"$ref": f"{_REF}{META}.ManagedFieldsEntry"}], "default": {}},
                "description": "Which manager owns which fields (server-side apply).",
            },
        },
    },
}

_TYPE_META = {
    "apiVersion": _string(
        f"The versioned schema of this representation of an object. More info: {_DOCS}#resources"
    ),
    "kind": _string(f"The REST resource this object represents. More info: {_DOCS}#types-kinds"),
}
_OBJECT_META = _ref(
    f"{META}.ObjectMeta", f"Standard object's metadata. More info: {_DOCS}#metadata"
)


def kind_schema(resource: ResourceType) -> dict[str, Any] | None:
    """The published schema of a custom resource's kind (None for built-in kinds)."""
    if resource.schema is None:
        return None
    schema = copy.deepcopy(resource.schema)
    properties = schema.setdefault("properties", {})
    for field, published in _TYPE_META.items():
        properties[field] = {**published, **properties.get(field, {}), "type": "string"}
    properties["metadata"] = copy.deepcopy(_OBJECT_META)
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [
        {"group": resource.group, "kind": resource.kind, "version": resource.version}
    ]
    return schema


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
    schemas: dict[str, Any] = {}
    for resource in resources:
        if resource.verbs and "patch" not in resource.verbs:
            continue  # the reviews: create only
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
        published = kind_schema(resource)
        if published is not None:
            schemas[schema_name(resource.group, resource.version, resource.kind)] = published
    if schemas:
        schemas.update(copy.deepcopy(META_SCHEMAS))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
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

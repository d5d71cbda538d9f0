"""Apply manifests through the official Kubernetes client, idempotently: CRDs first, then
namespaced objects (created, or merge-patched when they exist)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

CONFLICT = 409
NOT_FOUND = 404


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in paths:
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def apply_crd(api: client.ApiClient, crd: dict[str, Any]) -> None:
    # The client serialises plain dicts as they are; its type hints only name its model classes.
    extensions = client.ApiextensionsV1Api(api)
    name = crd["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(crd)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != CONFLICT:
            raise
        current = extensions.read_custom_resource_definition(name)
        version = current.metadata.resource_version if current.metadata else None
        updated = {**crd, "metadata": {**crd["metadata"], "resourceVersion": version}}
        extensions.replace_custom_resource_definition(name, updated)  # type: ignore[arg-type]


def wait_served(api: client.ApiClient, crd: dict[str, Any], *, timeout: float = 30.0) -> None:
    spec = crd["spec"]
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while True:
        try:
            custom.list_cluster_custom_object(
                spec["group"], spec["versions"][0]["name"], spec["names"]["plural"], limit=1
            )
            return
        except ApiException as exc:
            if exc.status != NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != CONFLICT:
            raise


def apply_config_map(
    api: client.ApiClient, namespace: str, name: str, data: dict[str, str]
) -> None:
    """Create the ConfigMap, or replace its data."""
    core = client.CoreV1Api(api)
    body = {"metadata": {"name": name, "namespace": namespace}, "data": data}
    try:
        core.create_namespaced_config_map(namespace, body)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != CONFLICT:
            raise
        core.patch_namespaced_config_map(name, namespace, {"data": data})


def apply_custom_object(api: client.ApiClient, obj: dict[str, Any], plural: str) -> None:
    group, version = obj["apiVersion"].split("/")
    namespace = obj["metadata"].get("namespace", "default")
    custom = client.CustomObjectsApi(api)
    try:
        custom.create_namespaced_custom_object(group, version, namespace, plural, obj)
    except ApiException as exc:
        if exc.status != CONFLICT:
            raise
        custom.patch_namespaced_custom_object(
            group, version, namespace, plural, obj["metadata"]["name"], obj
        )


def apply(api: client.ApiClient, crds: list[dict[str, Any]], objects: list[dict[str, Any]]) -> None:
    plurals = {crd["spec"]["names"]["kind"]: crd["spec"]["names"]["plural"] for crd in crds}
    for crd in crds:
        apply_crd(api, crd)
    for crd in crds:
        wait_served(api, crd)
    for obj in objects:
        ensure_namespace(api, obj["metadata"].get("namespace", "default"))
        apply_custom_object(api, obj, plurals[obj["kind"]])

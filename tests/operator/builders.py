"""Builders of Kubernetes objects (as the API returns them) for the operator's tests."""

from __future__ import annotations

import base64
from typing import Any

from flotta.schemas.crd.common import API_VERSION
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.workload import EdgeWorkload


def device_obj(
    name: str,
    namespace: str = "fleet",
    *,
    labels: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec or {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def device(name: str, namespace: str = "fleet", **kwargs: Any) -> EdgeDevice:
    return EdgeDevice.model_validate(device_obj(name, namespace, **kwargs))


def device_set(
    name: str, namespace: str = "fleet", spec: dict[str, Any] | None = None
) -> EdgeDeviceSet:
    return EdgeDeviceSet.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "EdgeDeviceSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec or {},
        }
    )


def pod_spec(image: str = "localhost/busybox:latest", **container: Any) -> dict[str, Any]:
    return {"containers": [{"name": "main", "image": image, **container}]}


def workload_obj(
    name: str,
    namespace: str = "fleet",
    *,
    selector: dict[str, Any] | None = None,
    device: str | None = None,
    pod: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    extra_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "pod", "pod": {"spec": pod or pod_spec()}}
    if device is not None:
        spec["device"] = device
    else:
        spec["deviceSelector"] = selector if selector is not None else {}
    spec.update(extra_spec or {})
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeWorkload",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def workload(
    name: str, namespace: str = "fleet", **kwargs: Any
) -> tuple[EdgeWorkload, dict[str, Any]]:
    """The model and the raw pod spec, as the fleet takes them."""
    obj = workload_obj(name, namespace, **kwargs)
    return EdgeWorkload.model_validate(obj), obj["spec"]["pod"]["spec"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()

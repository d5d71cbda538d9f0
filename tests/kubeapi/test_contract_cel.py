"""CEL validation rules (``x-kubernetes-validations``) as kube-apiserver evaluates them,
transition rules (``oldSelf``) included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubeapi.crd import GROUP, VERSION, widget, widget_crd

PLURAL = "gizmos"


@pytest.fixture
def custom(kube: Any, tmp_path: Path) -> client.CustomObjectsApi:
    crd = widget_crd(PLURAL, "Gizmo")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["x-kubernetes-validations"] = [
        {"rule": "self.size >= oldSelf.size", "message": "size may only grow"},
        {"rule": "self.color != 'green' || self.size > 2", "message": "green needs size 3"},
    ]
    spec["properties"]["color"]["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf", "message": "color is immutable"}
    ]
    spec["properties"]["ports"]["items"]["x-kubernetes-validations"] = [
        {"rule": "self.port == oldSelf.port", "message": "a named port keeps its number"}
    ]
    path = tmp_path / "gizmos.yaml"
    path.write_text(yaml.safe_dump(crd))
    kube.kubectl("apply", "-f", str(path))
    kube.kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=30s")
    return client.CustomObjectsApi(kube.api_client())


def _patch(custom: client.CustomObjectsApi, namespace: str, name: str, spec: Any) -> Any:
    return custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
    )


def _refused(custom: client.CustomObjectsApi, namespace: str, name: str, spec: Any) -> str:
    with pytest.raises(ApiException) as refused:
        _patch(custom, namespace, name, spec)
    assert refused.value.status == 422
    message: str = json.loads(refused.value.body or "{}")["message"]
    return message


def test_transition_rules_compare_with_the_stored_object(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    body = {**widget("g1", size=3, ports=[{"name": "http", "port": 80}]), "kind": "Gizmo"}
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)

    message = _refused(custom, kube_namespace, "g1", {"color": "blue"})
    assert 'spec.color: Invalid value: "string": color is immutable' in message
    message = _refused(custom, kube_namespace, "g1", {"size": 2})
    assert 'spec: Invalid value: "object": size may only grow' in message
    message = _refused(custom, kube_namespace, "g1", {"ports": [{"name": "http", "port": 81}]})
    assert "a named port keeps its number" in message

    grown = _patch(custom, kube_namespace, "g1", {"size": 5})
    assert grown["spec"]["size"] == 5
    renamed = _patch(custom, kube_namespace, "g1", {"ports": [{"name": "web", "port": 81}]})
    assert renamed["spec"]["ports"] == [{"name": "web", "port": 81}]  # a new item: no oldSelf


def test_rules_without_old_self_run_on_create_and_update(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    small = {**widget("g2", color="green", size=1), "kind": "Gizmo"}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, small)
    assert refused.value.status == 422
    assert "green needs size 3" in json.loads(refused.value.body or "{}")["message"]
    body = {**widget("g2", color="green", size=3), "kind": "Gizmo"}
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    assert "size may only grow" in _refused(custom, kube_namespace, "g2", {"size": 1})

"""Where the local API differs from Kubernetes: each test asserts what each side does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.kubeapi.crd import GROUP, widget, widget_crd


def test_cel_rules_outside_the_subset_are_skipped_locally(
    kube: Any, kube_namespace: str, tmp_path: Path
) -> None:
    crd = widget_crd("gadgets", "Gadget")
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"
    ] = [
        {"rule": "self.color != 'green'", "message": "no green gadgets"},
        {"rule": "self.color.lowerAscii() != 'blue'", "message": "no blue gadgets"},
    ]
    path = tmp_path / "gadgets.yaml"
    path.write_text(yaml.safe_dump(crd))
    kube.kubectl("apply", "-f", str(path))
    kube.kubectl("wait", "--for=condition=Established", f"crd/gadgets.{GROUP}", "--timeout=30s")

    def apply(color: str) -> Any:
        gadget = {**widget(f"g-{color}", color=color), "kind": "Gadget"}
        return kube.kubectl(
            "apply", "-n", kube_namespace, "-f", "-", stdin=yaml.safe_dump(gadget), check=False
        )

    green = apply("green")  # inside the subset: refused on both sides
    assert green.returncode != 0
    assert 'spec: Invalid value: "object": no green gadgets' in green.stderr
    blue = apply("blue")  # lowerAscii() is outside the local subset
    if kube.local:
        assert blue.returncode == 0, blue.stderr
    else:
        assert blue.returncode != 0
        assert "no blue gadgets" in blue.stderr


def test_explain_of_built_in_kinds(kube: Any) -> None:
    explained = kube.kubectl("explain", "configmap.data", check=False)
    if kube.local:  # only custom kinds publish schemas locally
        assert explained.returncode != 0
        assert "not found in OpenAPI schema" in explained.stderr
    else:
        assert explained.returncode == 0, explained.stderr
        assert "FIELD: data <map[string]string>" in explained.stdout


def test_update_managers_are_not_capped(kube: Any, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_config_map(
        kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="many"))
    )
    for index in range(12):
        core.patch_namespaced_config_map(
            "many",
            kube_namespace,
            {"data": {f"k{index}": "v"}},
            field_manager=f"writer-{index}",
        )
    metadata = core.read_namespaced_config_map("many", kube_namespace).metadata
    assert metadata is not None
    assert metadata.managed_fields is not None
    entries = metadata.managed_fields
    managers = {e.manager for e in entries if e.operation == "Update"}
    if kube.local:  # every Update manager keeps its entry
        assert {f"writer-{index}" for index in range(12)} <= managers
    else:  # beyond ten, the oldest are merged into one entry
        assert len(managers) <= 10
        assert "ancient-changes" in managers

"""Contract: discovery documents as clients request them (local API, or --real-cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubeapi.crd import GROUP, PLURAL, VERSION, install_widget_crd
from tests.kubeapi.raw import request


@pytest.mark.parametrize("path", ["/version", "/api", "/apis"])
def test_discovery_roots_with_a_trailing_slash(kube: Any, path: str) -> None:
    status, plain = request(kube, "GET", path)
    assert status == 200
    slashed_status, slashed = request(kube, "GET", path + "/")
    assert (slashed_status, slashed) == (200, plain)
    if path == "/version":
        assert plain["major"] == "1"
    else:
        assert plain["kind"] == ("APIVersions" if path == "/api" else "APIGroupList")


def test_unknown_group_stays_not_found(kube: Any) -> None:
    status, body = request(kube, "GET", "/apis/nope.example.flotta.io/")
    assert status == 404
    assert body["reason"] == "NotFound"


def test_openapi_v3_publishes_custom_kind_schemas(kube: Any) -> None:
    install_widget_crd(kube.api_client())
    status, index = request(kube, "GET", "/openapi/v3")
    assert status == 200
    url = index["paths"][f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"]
    status, document = request(kube, "GET", url.split("?")[0])
    assert status == 200
    schemas = document["components"]["schemas"]
    widget_schema = schemas["io.flotta.example.v1.Widget"]
    assert {"group": GROUP, "version": VERSION, "kind": "Widget"} in widget_schema[
        "x-kubernetes-group-version-kind"
    ]
    assert widget_schema["properties"]["spec"]["properties"]["color"]["enum"] == [
        "red",
        "green",
        "blue",
    ]
    meta_ref = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert widget_schema["properties"]["metadata"]["allOf"] == [{"$ref": meta_ref}]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    item_path = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}"
    patch = document["paths"][item_path]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": GROUP,
        "version": VERSION,
        "kind": "Widget",
    }

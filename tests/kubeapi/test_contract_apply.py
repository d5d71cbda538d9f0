"""Contract: server-side apply and managedFields through the official client."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kubetypes import error_status, obj
from tests.kubeapi.crd import GROUP, PLURAL, VERSION, install_widget_crd, widget
from tests.kubeapi.raw import request

APPLY = "application/apply-patch+yaml"


@pytest.fixture
def custom(kube: Any) -> client.CustomObjectsApi:
    api_client = kube.api_client()
    install_widget_crd(api_client)
    return client.CustomObjectsApi(api_client)


def _apply(
    custom: client.CustomObjectsApi,
    namespace: str,
    body: dict[str, Any],
    manager: str,
    **options: Any,
) -> object:
    """What the client answered: the object as applied, or None when the apply created it
    (the client decodes no 201 answer to a PATCH)."""
    return custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        body["metadata"]["name"],
        body,
        field_manager=manager,
        _content_type=APPLY,
        **options,
    )


def _entries(found: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in found["metadata"].get("managedFields", [])}


def _conflict(raised: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert raised.value.status == 409
    status = error_status(raised.value)
    assert status["reason"] == "Conflict"
    return status


def test_apply_creates_and_records_the_manager(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    body = widget("made", color="blue", ports=[{"name": "http", "port": 80}])
    body["metadata"]["labels"] = {"team": "edge"}
    answered = _apply(custom, kube_namespace, body, "applier")
    assert answered is None  # 201 Created, which the client does not decode for PATCH
    created = obj(
        custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "made")
    )
    assert created["spec"]["color"] == "blue"
    assert created["spec"]["size"] == 3  # defaulted as for any write
    entry = _entries(created)[("applier", "Apply")]
    assert entry["apiVersion"] == f"{GROUP}/{VERSION}"
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["time"]
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:team": {}}},
        "f:spec": {
            "f:color": {},
            "f:ports": {'k:{"name":"http"}': {".": {}, "f:name": {}, "f:port": {}}},
        },
    }
    again = obj(_apply(custom, kube_namespace, body, "applier"))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_apply_without_field_manager_is_refused(kube: Any, kube_namespace: str) -> None:
    install_widget_crd(kube.api_client())
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{kube_namespace}/{PLURAL}/nameless"
    status, body = request(kube, "PATCH", path, json.dumps(widget("nameless")), content_type=APPLY)
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "fieldManager"
    assert "fieldManager: Required value: is required for apply patch" in body["message"]
    cbor, _ = request(kube, "PATCH", path, "", content_type="application/apply-patch+cbor")
    assert cbor == 415
    forced, refused = request(
        kube,
        "PATCH",
        path,
        "{}",
        content_type="application/merge-patch+json",
        query=[("force", "true")],
    )
    assert forced == 422
    assert refused["details"]["causes"][0]["field"] == "force"


def test_dropped_fields_go_unless_another_manager_owns_them(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    first = widget("shared", color="red", name="abc", aliases=["x"])
    first["spec"]["ports"] = [{"name": "a", "port": 1}]
    _apply(custom, kube_namespace, first, "one")
    second = widget("shared", color="red", aliases=["y"], ports=[{"name": "b", "port": 2}])
    both = obj(_apply(custom, kube_namespace, second, "two"))  # same color: shared, no conflict
    assert both["spec"]["aliases"] == ["x", "y"]
    assert [p["name"] for p in both["spec"]["ports"]] == ["a", "b"]
    assert {"f:color": {}}.items() <= _entries(both)[("two", "Apply")]["fieldsV1"]["f:spec"].items()

    dropped = obj(_apply(custom, kube_namespace, widget("shared", color="red"), "one"))
    assert "name" not in dropped["spec"]  # only "one" owned it
    assert dropped["spec"]["aliases"] == ["y"]
    assert [p["name"] for p in dropped["spec"]["ports"]] == ["b"]
    assert dropped["spec"]["color"] == "red"
    left = obj(_apply(custom, kube_namespace, widget("shared", color="red"), "two"))
    assert left["spec"].get("aliases") in (None, [])  # every item gone
    assert left["spec"].get("ports") in (None, [])
    assert left["spec"]["color"] == "red"  # both still apply it


def test_conflict_with_an_update_manager_and_force(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    _apply(custom, kube_namespace, widget("c", color="red", size=4), "applier")
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        "c",
        {"spec": {"color": "green"}},
        field_manager="editor",
    )
    with pytest.raises(ApiException) as raised:
        _apply(custom, kube_namespace, widget("c", color="blue", size=4), "applier")
    status = _conflict(raised)
    assert re.fullmatch(
        rf'Apply failed with 1 conflict: conflict with "editor" using {GROUP}/{VERSION}'
        r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: \.spec\.color",
        status["message"],
    ), status["message"]
    cause = status["details"]["causes"][0]
    assert cause["reason"] == "FieldManagerConflict"
    assert cause["field"] == ".spec.color"
    assert cause["message"].startswith('conflict with "editor" using ')

    forced = obj(
        _apply(custom, kube_namespace, widget("c", color="blue", size=4), "applier", force=True)
    )
    assert forced["spec"]["color"] == "blue"
    editor = _entries(forced).get(("editor", "Update"))
    assert editor is None or "f:color" not in editor["fieldsV1"].get("f:spec", {})
    assert "f:color" in _entries(forced)[("applier", "Apply")]["fieldsV1"]["f:spec"]


def test_conflicts_between_appliers(custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    _apply(custom, kube_namespace, widget("two", color="red", size=4), "first")
    with pytest.raises(ApiException) as raised:
        _apply(custom, kube_namespace, widget("two", color="blue", size=5), "second")
    status = _conflict(raised)
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "first":\n- .spec.color\n- .spec.size'
    )
    assert {c["field"] for c in status["details"]["causes"]} == {".spec.color", ".spec.size"}


def test_plain_writes_record_update_managers(
    kube: Any, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    created = obj(
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget("upd"), field_manager="creator"
        )
    )
    entry = _entries(created)[("creator", "Update")]
    assert entry["fieldsV1"]["f:spec"]["f:color"] == {}
    status = obj(
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "upd",
            {"status": {"phase": "Ready"}},
            field_manager="reporter",
        )
    )
    reporter = _entries(status)[("reporter", "Update")]
    assert reporter["subresource"] == "status"
    assert reporter["fieldsV1"] == {"f:status": {".": {}, "f:phase": {}}}
    unnamed = obj(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "upd", {"spec": {"size": 9}}
        )
    )
    agent = kube.api_client().user_agent.split("/")[0]
    assert "f:size" in _entries(unnamed)[(agent, "Update")]["fieldsV1"]["f:spec"]
    assert "f:size" not in _entries(unnamed)[("creator", "Update")]["fieldsV1"]["f:spec"]


def test_apply_dry_run_stores_nothing(
    kube: Any, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{kube_namespace}/{PLURAL}/ghost"
    status, answered = request(
        kube,
        "PATCH",
        path,
        json.dumps(widget("ghost")),
        content_type=APPLY,
        query=[("fieldManager", "applier"), ("dryRun", "All")],
    )
    assert status == 201
    assert answered["spec"] == {"color": "red", "size": 3}
    assert _entries(answered)[("applier", "Apply")]
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "ghost")
    assert missing.value.status == 404

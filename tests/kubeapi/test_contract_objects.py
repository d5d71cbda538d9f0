"""Contract: object semantics through the official client (local API, or --real-cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kubetypes import error_status, obj
from tests.kubeapi.crd import GROUP, PLURAL, VERSION, install_widget_crd, widget


@pytest.fixture
def custom(kube: Any) -> client.CustomObjectsApi:
    api_client = kube.api_client()
    install_widget_crd(api_client)
    return client.CustomObjectsApi(api_client)


def _named_config_map(name: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))


def _name(item: client.V1ConfigMap | client.CoreV1Event) -> str:
    assert item.metadata is not None
    assert item.metadata.name is not None
    return item.metadata.name


def _phase(namespace: client.V1Namespace) -> str | None:
    assert namespace.status is not None
    return namespace.status.phase


def test_create_sets_metadata_and_defaults(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    body = widget("w1", labels_ignored=None)
    body["spec"].pop("labels_ignored")
    body["metadata"].update(
        labels={"site": "a"},
        annotations={"note": "x"},
        finalizers=["example.flotta.io/keep"],
        ownerReferences=[
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "owner",
                "uid": "0c2b8b7e-0000-4000-8000-000000000001",
            }
        ],
    )
    body["spec"]["options"] = {}
    created = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    )
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"]
    assert meta["resourceVersion"]
    assert meta["generation"] == 1
    assert meta["labels"] == {"site": "a"}
    assert meta["annotations"] == {"note": "x"}
    assert meta["finalizers"] == ["example.flotta.io/keep"]
    assert meta["ownerReferences"][0]["name"] == "owner"
    assert created["spec"]["size"] == 3  # default filled in
    assert created["spec"]["options"] == {"fast": False}  # nested default inside a given object
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "w1", {"metadata": {"finalizers": None}}
    )


def test_resource_version_is_monotonic_across_kinds(
    kube: Any, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube.api_client())
    first = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget())
    )
    config_map = core.create_namespaced_config_map(
        kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"a": "b"})
    )
    assert config_map.metadata is not None
    assert config_map.metadata.resource_version is not None
    second = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget())
    )
    versions = [
        int(first["metadata"]["resourceVersion"]),
        int(config_map.metadata.resource_version),
        int(second["metadata"]["resourceVersion"]),
    ]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_status_subresource_and_generation(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    created = obj(
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, {**widget("w2"), "status": {"phase": "Ignored"}}
        )
    )
    assert "status" not in created  # status on create is dropped with the status subresource
    patched = obj(
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w2",
            {"status": {"phase": "Ready"}, "spec": {"color": "blue"}},
        )
    )
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"]["color"] == "red"  # /status changes only status
    assert patched["metadata"]["generation"] == 1
    main = obj(
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w2",
            {"status": {"phase": "Broken"}, "metadata": {"labels": {"a": "b"}}},
        )
    )
    assert main["status"] == {"phase": "Ready"}  # the main endpoint ignores status
    assert main["metadata"]["generation"] == 1  # metadata changes do not bump generation
    spec = obj(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w2", {"spec": {"size": 5}}
        )
    )
    assert spec["metadata"]["generation"] == 2


def test_update_with_stale_resource_version_conflicts(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    created = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("w3"))
    )
    fresh = obj(
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w3", {**created, "spec": {"color": "green"}}
        )
    )
    assert fresh["spec"]["color"] == "green"
    with pytest.raises(ApiException) as raised:
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w3", {**created, "spec": {"color": "blue"}}
        )
    assert raised.value.status == 409
    status = error_status(raised.value)
    assert status["kind"] == "Status"
    assert status["reason"] == "Conflict"
    assert status["code"] == 409
    assert "the object has been modified" in status["message"]
    with pytest.raises(ApiException) as stale_patch:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w3",
            {
                "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
                "spec": {"size": 2},
            },
        )
    assert stale_patch.value.status == 409


def test_json_patch_and_merge_patch(custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, widget("w4", tags=["a", "b"])
    )
    operations: list[dict[str, Any]] = [
        {"op": "replace", "path": "/spec/color", "value": "blue"},
        {"op": "add", "path": "/spec/tags/-", "value": "c"},
        {"op": "test", "path": "/spec/size", "value": 3},
    ]
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        "w4",
        operations,
        _content_type="application/json-patch+json",
    )
    got = obj(custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w4"))
    assert got["spec"]["color"] == "blue"
    assert got["spec"]["tags"] == ["a", "b", "c"]
    merged = obj(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w4", {"spec": {"tags": ["z"], "name": None}}
        )
    )
    assert merged["spec"]["tags"] == ["z"]  # merge patch replaces lists
    with pytest.raises(ApiException) as failed:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w4",
            [{"op": "test", "path": "/spec/color", "value": "red"}],
            _content_type="application/json-patch+json",
        )
    assert failed.value.status == 422
    with pytest.raises(ApiException) as strategic:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w4",
            {"spec": {"size": 4}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert strategic.value.status == 415  # custom resources take no strategic merge patch


def test_validation_answers_422_with_field_causes(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    bad = widget("w5", color="purple", size=0, name="TOOLONGNAME", tags=["a", "b", "c", "d"])
    bad["spec"].pop("color")
    bad["spec"]["color"] = "purple"
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, bad)
    status = error_status(raised.value)
    assert raised.value.status == 422
    assert status["kind"] == "Status"
    assert status["reason"] == "Invalid"
    assert status["code"] == 422
    assert status["details"]["kind"] == "Widget"
    assert status["details"]["group"] == GROUP
    fields = {cause["field"]: cause["reason"] for cause in status["details"]["causes"]}
    assert fields["spec.color"] == "FieldValueNotSupported"
    assert fields["spec.size"] == "FieldValueInvalid"
    assert fields["spec.tags"] == "FieldValueTooMany"
    assert "spec.name" in fields
    assert status["message"].startswith('Widget.example.flotta.io "w5" is invalid')
    missing = widget("w6")
    missing["spec"] = {"size": 2}
    with pytest.raises(ApiException) as required:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, missing)
    causes = error_status(required.value)["details"]["causes"]
    assert {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.color",
    } in causes


def test_unknown_fields_pruned_or_refused(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    body = widget("w7", bogus=1, extra={"anything": {"goes": True}})
    created = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    )
    assert "bogus" not in created["spec"]
    assert created["spec"]["extra"] == {"anything": {"goes": True}}
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget("w8", bogus=1), field_validation="Strict"
        )
    assert raised.value.status == 400
    assert 'unknown field "spec.bogus"' in error_status(raised.value)["message"]


def test_finalizers_hold_deletion(custom: client.CustomObjectsApi, kube_namespace: str) -> None:
    body = widget("w9")
    body["metadata"]["finalizers"] = ["example.flotta.io/a", "example.flotta.io/b"]
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w9")
    held = obj(custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w9"))
    assert held["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as adding:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w9",
            {
                "metadata": {
                    "finalizers": [
                        "example.flotta.io/a",
                        "example.flotta.io/b",
                        "example.flotta.io/c",
                    ]
                }
            },
        )
    assert adding.value.status == 422
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        "w9",
        {"metadata": {"finalizers": ["example.flotta.io/b"]}},
    )
    assert obj(custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w9"))[
        "metadata"
    ]["finalizers"] == ["example.flotta.io/b"]
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "w9", {"metadata": {"finalizers": []}}
    )
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w9")
    assert gone.value.status == 404
    status = error_status(gone.value)
    assert status["reason"] == "NotFound"
    assert status["details"]["name"] == "w9"


def test_missing_namespace_and_object_answer_not_found(
    kube: Any, custom: client.CustomObjectsApi
) -> None:
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(ApiException) as missing_namespace:
        core.create_namespaced_config_map(
            "no-such-namespace-x1", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"))
        )
    assert missing_namespace.value.status == 404
    assert (
        error_status(missing_namespace.value)["message"]
        == 'namespaces "no-such-namespace-x1" not found'
    )
    with pytest.raises(ApiException) as missing_object:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "absent")
    assert error_status(missing_object.value)["message"] == f'{PLURAL}.{GROUP} "absent" not found'


def test_create_twice_answers_already_exists(kube: Any, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_config_map(kube_namespace, _named_config_map("dup"))
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map(kube_namespace, _named_config_map("dup"))
    assert raised.value.status == 409
    assert error_status(raised.value)["reason"] == "AlreadyExists"


def test_core_kinds(kube: Any, kube_namespace: str) -> None:
    api_client = kube.api_client()
    core = client.CoreV1Api(api_client)
    secret = core.create_namespaced_secret(
        kube_namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"}),
    )
    assert secret.data == {"k": "dg=="}
    assert secret.type == "Opaque"
    config_map = core.create_namespaced_config_map(
        kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"a": "1"})
    )
    assert config_map.data is not None
    config_map.data["a"] = "2"
    assert core.replace_namespaced_config_map("cm", kube_namespace, config_map).data == {"a": "2"}
    coordination = client.CoordinationV1Api(api_client)
    lease = coordination.create_namespaced_lease(
        kube_namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="op-1", lease_duration_seconds=15),
        ),
    )
    assert lease.spec is not None
    lease.spec.holder_identity = "op-2"
    renewed = coordination.replace_namespaced_lease("leader", kube_namespace, lease)
    assert renewed.spec is not None
    assert renewed.spec.holder_identity == "op-2"
    lease.spec.holder_identity = "op-3"  # stale resourceVersion: the other candidate lost
    with pytest.raises(ApiException) as raised:
        coordination.replace_namespaced_lease("leader", kube_namespace, lease)
    assert raised.value.status == 409
    core.create_namespaced_event(
        kube_namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="e1"),
            involved_object=client.V1ObjectReference(
                kind="Widget", name="w1", namespace=kube_namespace
            ),
            reason="Tested",
            message="hello",
            type="Normal",
        ),
    )
    core.create_namespaced_event(
        kube_namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="e2"),
            involved_object=client.V1ObjectReference(
                kind="Widget", name="w2", namespace=kube_namespace
            ),
            reason="Other",
        ),
    )
    events = core.list_namespaced_event(
        kube_namespace, field_selector="involvedObject.name=w1,involvedObject.kind=Widget"
    )
    assert [_name(event) for event in events.items] == ["e1"]
    with pytest.raises(ApiException) as unsupported:
        core.list_namespaced_config_map(kube_namespace, field_selector="data.a=1")
    assert unsupported.value.status == 400


def test_namespace_deletion_removes_contents(kube: Any) -> None:
    core = client.CoreV1Api(kube.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed-ns1")))
    assert _phase(core.read_namespace("doomed-ns1")) == "Active"
    core.create_namespaced_config_map("doomed-ns1", _named_config_map("c"))
    core.delete_namespace("doomed-ns1")
    if kube.local:
        with pytest.raises(ApiException) as gone:
            core.read_namespace("doomed-ns1")
        assert gone.value.status == 404
    else:
        assert _phase(core.read_namespace("doomed-ns1")) == "Terminating"


def test_list_pagination(kube: Any, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    for index in range(7):
        core.create_namespaced_config_map(kube_namespace, _named_config_map(f"c{index}"))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(kube_namespace, limit=3, _continue=token)
        names += [_name(item) for item in page.items]
        pages += 1
        assert page.metadata is not None
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3
    assert [n for n in names if n.startswith("c")] == [f"c{i}" for i in range(7)]


def test_unknown_fields_are_warned_about(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    data, _, headers = custom.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, kube_namespace, PLURAL, widget("loose", bogus=1), field_validation="Warn"
    )
    assert "bogus" not in obj(data)["spec"]
    assert 'unknown field \\"spec.bogus\\"' in headers.get("Warning", "")
    _, _, quiet = custom.create_namespaced_custom_object_with_http_info(
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        widget("ignored", bogus=1),
        field_validation="Ignore",
    )
    assert "Warning" not in quiet

"""Contract: ``dryRun=All`` writes answer as the real write would, and store nothing."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kubetypes import error_status, obj
from tests.kubeapi.crd import GROUP, PLURAL, VERSION, install_widget_crd, widget


@pytest.fixture
def custom(kube: Any) -> client.CustomObjectsApi:
    api_client = kube.api_client()
    install_widget_crd(api_client)
    return client.CustomObjectsApi(api_client)


def _read(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return obj(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def test_dry_run_create_answers_the_object_and_stores_nothing(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    created = obj(
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget("dry"), dry_run="All"
        )
    )
    assert created["spec"] == {"color": "red", "size": 3}  # defaulted as for real
    assert created["metadata"]["uid"]
    assert created["metadata"]["creationTimestamp"]
    assert created["metadata"]["generation"] == 1
    assert not created["metadata"].get("resourceVersion")
    with pytest.raises(ApiException) as missing:
        _read(custom, kube_namespace, "dry")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget("bad", color="pink"), dry_run="All"
        )
    assert invalid.value.status == 422  # validated as for real
    assert error_status(invalid.value)["details"]["causes"][0]["field"] == "spec.color"


def test_dry_run_create_of_an_existing_object_conflicts(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("one"))
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget("one"), dry_run="All"
        )
    assert raised.value.status == 409
    assert error_status(raised.value)["reason"] == "AlreadyExists"


def test_dry_run_update_patch_and_status(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    stored = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("w"))
    )
    version = stored["metadata"]["resourceVersion"]
    replaced = obj(
        custom.replace_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "w",
            {**stored, "spec": {"color": "blue"}},
            dry_run="All",
        )
    )
    assert replaced["spec"] == {"color": "blue", "size": 3}
    assert replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["resourceVersion"] == version
    patched = obj(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w", {"spec": {"size": 7}}, dry_run="All"
        )
    )
    assert patched["spec"] == {"color": "red", "size": 7}
    assert patched["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as invalid:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w", {"spec": {"size": 70}}, dry_run="All"
        )
    assert invalid.value.status == 422
    status = obj(
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, kube_namespace, PLURAL, "w", {"status": {"phase": "Dry"}}, dry_run="All"
        )
    )
    assert status["status"] == {"phase": "Dry"}
    after = _read(custom, kube_namespace, "w")
    assert after == stored


def test_dry_run_delete_keeps_the_object(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    plain = obj(
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget("plain")
        )
    )
    custom.delete_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "plain", dry_run="All"
    )
    assert _read(custom, kube_namespace, "plain") == plain
    held = widget("held")
    held["metadata"]["finalizers"] = ["example.flotta.io/keep"]
    stored = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, held)
    )
    answered = obj(
        custom.delete_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "held", dry_run="All"
        )
    )
    assert answered["metadata"]["deletionTimestamp"]
    assert _read(custom, kube_namespace, "held") == stored
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "held", {"metadata": {"finalizers": None}}
    )


def test_dry_run_writes_send_no_watch_events(
    kube: Any, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("w"))
    listed = obj(custom.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL))
    since = listed["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, widget("ghost"), dry_run="All"
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "w", {"spec": {"size": 9}}, dry_run="All"
    )
    custom.delete_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "w", dry_run="All"
    )
    real = obj(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "w", {"spec": {"size": 4}}
        )
    )
    if kube.local:  # a real cluster's other writers move the shared counter too
        assert int(real["metadata"]["resourceVersion"]) == int(since) + 1
    events = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        resource_version=since,
        timeout_seconds=5,
    )
    first = next(events)
    events.close()
    assert first["type"] == "MODIFIED"
    assert first["object"]["spec"]["size"] == 4


def test_unsupported_dry_run_value_is_refused(kube: Any, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map(
            kube_namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")),
            dry_run="Some",
        )
    assert raised.value.status == 422
    assert "dryRun" in error_status(raised.value)["message"]
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("c", kube_namespace)
    assert missing.value.status == 404

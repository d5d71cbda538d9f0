"""Contract: list and watch, selectors, resourceVersions, 410 Gone, bookmarks."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kubernetes import client

from tests.fixtures.kubetypes import http_response, obj
from tests.kubeapi.crd import GROUP, PLURAL, VERSION, install_widget_crd, widget


@pytest.fixture
def custom(kube: Any) -> client.CustomObjectsApi:
    api_client = kube.api_client()
    install_widget_crd(api_client)
    return client.CustomObjectsApi(api_client)


def _labelled(name: str, **labels: str) -> dict[str, Any]:
    body = widget(name)
    body["metadata"]["labels"] = labels
    return body


def _watch_lines(
    custom: client.CustomObjectsApi, namespace: str, seconds: int, **params: Any
) -> list[dict[str, Any]]:
    """A watch the server ends after ``seconds``; every event it sent."""
    response = http_response(
        custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            watch=True,
            timeout_seconds=seconds,
            _preload_content=False,
            **params,
        )
    )
    try:
        return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
    finally:
        response.release_conn()


def _names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["metadata"]["name"] for item in items)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web", ["c", "d"]),
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier notin (web)", ["c", "d"]),
        ("canary", ["b"]),
        ("!canary", ["a", "c", "d"]),
        ("tier=web,!canary", ["a"]),
        ("tier in (web, db), env notin (prod)", ["b", "c"]),
    ],
)
def test_list_with_label_selector(
    custom: client.CustomObjectsApi, kube_namespace: str, selector: str, expected: list[str]
) -> None:
    for name, labels in (
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "web", "canary": "yes"}),
        ("c", {"tier": "db"}),
        ("d", {}),
    ):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, _labelled(name, **labels)
        )
    listed = obj(
        custom.list_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, label_selector=selector
        )
    )
    assert _names(listed["items"]) == expected


def test_field_selectors_on_name_and_namespace(
    kube: Any, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube.api_client())
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=f"{kube_namespace}-b"))
    )
    try:
        for namespace in (kube_namespace, f"{kube_namespace}-b"):
            for name in ("x", "y"):
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, widget(name)
                )
        by_name = obj(
            custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, field_selector="metadata.name=x"
            )
        )
        pairs = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in by_name["items"]}
        assert {(kube_namespace, "x"), (f"{kube_namespace}-b", "x")} <= pairs
        assert all(name == "x" for _, name in pairs)
        by_namespace = obj(
            custom.list_cluster_custom_object(
                GROUP,
                VERSION,
                PLURAL,
                field_selector=f"metadata.namespace={kube_namespace},metadata.name!=x",
            )
        )
        assert [
            (i["metadata"]["namespace"], i["metadata"]["name"]) for i in by_namespace["items"]
        ] == [(kube_namespace, "y")]
    finally:
        core.delete_namespace(f"{kube_namespace}-b")


def test_watch_from_resource_version_with_selector(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, _labelled("before", app="x")
    )
    listed = obj(custom.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL))
    start = listed["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, _labelled("enters", app="y")
    )
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, _labelled("other", app="y")
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "enters", {"metadata": {"labels": {"app": "x"}}}
    )
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, kube_namespace, PLURAL, "enters", {"status": {"phase": "Up"}}
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "before", {"metadata": {"labels": {"app": "z"}}}
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "enters")
    events = _watch_lines(custom, kube_namespace, 2, resource_version=start, label_selector="app=x")
    seen = [(event["type"], event["object"]["metadata"]["name"]) for event in events]
    assert seen == [
        ("ADDED", "enters"),
        ("MODIFIED", "enters"),
        ("DELETED", "before"),
        ("DELETED", "enters"),
    ]
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start)
    assert events[1]["object"]["status"] == {"phase": "Up"}


def test_watch_without_resource_version_starts_with_current_state(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    for name in ("p", "q"):
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget(name))
    events = _watch_lines(custom, kube_namespace, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "p"),
        ("ADDED", "q"),
    ]


def test_watch_streams_changes_as_they_happen(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    start = obj(custom.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL))[
        "metadata"
    ]["resourceVersion"]
    response = http_response(
        custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            watch=True,
            resource_version=start,
            timeout_seconds=20,
            _preload_content=False,
        )
    )
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def read() -> None:
        buffer = b""
        for chunk in response.stream(1024, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                received.append(json.loads(line))
                if len(received) == 3:
                    done.set()
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("live"))
    for size in (4, 5):
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "live", {"spec": {"size": size}}
        )
    assert done.wait(10)
    response.close()
    reader.join(5)
    assert [e["type"] for e in received] == ["ADDED", "MODIFIED", "MODIFIED"]
    assert received[-1]["object"]["spec"]["size"] == 5
    assert received[-1]["object"]["metadata"]["generation"] == 3


def test_watch_from_expired_resource_version_answers_410(kube_api_factory: Any) -> None:
    endpoint = kube_api_factory(history_size=5)
    api_client = endpoint.api_client()
    install_widget_crd(api_client)
    custom = client.CustomObjectsApi(api_client)
    first = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("old"))
    )
    for size in range(1, 10):
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "old", {"spec": {"size": size}}
        )
    events = _watch_lines(
        custom, "default", 1, resource_version=first["metadata"]["resourceVersion"]
    )
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status"
    assert status["code"] == 410
    assert status["reason"] == "Expired"
    recent = obj(custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL))[
        "metadata"
    ]["resourceVersion"]
    assert _watch_lines(custom, "default", 1, resource_version=recent) == []


def test_watch_sends_bookmarks_when_asked(kube_api: Any) -> None:
    api_client = kube_api.api_client()
    install_widget_crd(api_client)
    custom = client.CustomObjectsApi(api_client)
    start = obj(custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL))[
        "metadata"
    ]["resourceVersion"]
    with_bookmarks = _watch_lines(
        custom, "default", 2, resource_version=start, allow_watch_bookmarks=True
    )
    assert with_bookmarks
    assert all(event["type"] == "BOOKMARK" for event in with_bookmarks)
    assert int(with_bookmarks[0]["object"]["metadata"]["resourceVersion"]) >= int(start)
    assert with_bookmarks[0]["object"]["kind"] == "Widget"
    assert _watch_lines(custom, "default", 1, resource_version=start) == []


def test_official_watch_helper_follows_the_stream(
    custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    from kubernetes import watch

    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("helper"))
    watcher = watch.Watch()
    seen = []
    for event in watcher.stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        timeout_seconds=1,
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
    assert seen == [("ADDED", "helper")]

"""Pure field-set logic of server-side apply: encoding, diffs, merges, ownership."""

from __future__ import annotations

from typing import Any

import pytest

from flotta.dev.kubeapi import applying, field_sets
from flotta.dev.kubeapi.errors import ConflictError
from flotta.dev.kubeapi.resources import ResourceType

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "x": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "aliases": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "x-kubernetes-map-type": "atomic",
                    "additionalProperties": {"type": "string"},
                },
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}
WIDGET = ResourceType(
    group="example.flotta.io",
    version="v1",
    plural="widgets",
    kind="Widget",
    namespaced=True,
    status_subresource=True,
    schema=SCHEMA,
)


def test_field_set_of_an_applied_configuration() -> None:
    config = {
        "metadata": {"labels": {"a": "b"}},
        "spec": {
            "x": "1",
            "tags": ["t"],
            "aliases": ["p", "q"],
            "ports": [{"name": "http", "port": 80}],
            "selector": {"k": "v"},
        },
    }
    schema = applying.object_schema(WIDGET)  # with ObjectMeta's fields
    trie = field_sets.to_trie(field_sets.field_set(config, schema))
    assert trie == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {
            "f:x": {},
            "f:tags": {},  # atomic: owned whole
            "f:aliases": {'v:"p"': {}, 'v:"q"': {}},
            "f:ports": {'k:{"name":"http"}': {".": {}, "f:name": {}, "f:port": {}}},
            "f:selector": {},  # atomic map
        },
    }
    assert field_sets.from_trie(trie) == field_sets.field_set(config, schema)


def test_trie_add_and_discard_keep_membership() -> None:
    trie: field_sets.Trie = {}
    field_sets.trie_add(trie, ("f:a",))
    field_sets.trie_add(trie, ("f:a", "f:b"))
    assert trie == {"f:a": {".": {}, "f:b": {}}}
    assert field_sets.trie_discard(trie, ("f:a", "f:b"))
    assert trie == {"f:a": {}}  # still a member itself
    field_sets.trie_add(trie, ("f:c", "f:d"))
    assert field_sets.trie_discard(trie, ("f:c", "f:d"))
    assert trie == {"f:a": {}}  # an inner node without members goes
    assert not field_sets.trie_discard(trie, ("f:nope",))
    field_sets.trie_add(trie, ("f:a", "f:b"))
    assert field_sets.trie_discard(trie, ("f:a",), subtree=True)
    assert trie == {}


def test_diff_finds_added_modified_and_removed() -> None:
    old = {"spec": {"x": "1", "ports": [{"name": "a", "port": 1}], "tags": ["t"]}}
    new = {"spec": {"x": "2", "ports": [{"name": "b", "port": 2}], "tags": ["t", "u"]}}
    change = field_sets.diff(old, new, SCHEMA)
    assert change.modified == {("f:spec", "f:x"), ("f:spec", "f:tags")}
    assert change.removed == {("f:spec", "f:ports", 'k:{"name":"a"}')}
    assert change.added == {
        ("f:spec", "f:ports", 'k:{"name":"b"}'),
        ("f:spec", "f:ports", 'k:{"name":"b"}', "f:name"),
        ("f:spec", "f:ports", 'k:{"name":"b"}', "f:port"),
    }
    assert not field_sets.diff(old, old, SCHEMA)


def test_merge_and_remove() -> None:
    live = {"spec": {"aliases": ["p"], "ports": [{"name": "a", "port": 1}], "tags": ["t"]}}
    config = {"spec": {"aliases": ["q"], "ports": [{"name": "a", "port": 2}], "tags": ["u"]}}
    merged = field_sets.merge(live, config, SCHEMA)
    assert merged == {
        "spec": {"aliases": ["p", "q"], "ports": [{"name": "a", "port": 2}], "tags": ["u"]}
    }
    field_sets.remove(merged, ("f:spec", "f:ports", 'k:{"name":"a"}'), SCHEMA)
    field_sets.remove(merged, ("f:spec", "f:aliases", 'v:"p"'), SCHEMA)
    assert merged == {"spec": {"aliases": ["q"], "ports": [], "tags": ["u"]}}
    assert field_sets.render(("f:spec", "f:ports", 'k:{"name":"a"}', "f:port")) == (
        '.spec.ports[name="a"].port'
    )
    assert field_sets.render(("f:spec", "f:aliases", 'v:"p"')) == '.spec.aliases[="p"]'


def _obj(spec: dict[str, Any], entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "w"}
    if entries is not None:
        meta["managedFields"] = entries
    return {"apiVersion": "example.flotta.io/v1", "kind": "Widget", "metadata": meta, "spec": spec}


def test_update_moves_ownership_and_apply_conflicts() -> None:
    created = applying.record_update(
        None, _obj({"x": "1"}), [], WIDGET, manager="maker", subresource="", moment="T1"
    )
    assert created[0]["fieldsV1"] == {"f:spec": {".": {}, "f:x": {}}}
    applied = applying.apply(
        _obj({"x": "1"}, created),
        _obj({"x": "1", "tags": ["a"]}),
        WIDGET,
        manager="ci",
        force=False,
        subresource="",
        moment="T2",
    )  # the same value: shared
    entries = applied.obj["metadata"]["managedFields"]
    assert [e["manager"] for e in entries] == ["ci", "maker"]  # Apply entries first
    edited = applying.record_update(
        applied.obj,
        {**applied.obj, "spec": {"x": "2", "tags": ["a"]}},
        entries,
        WIDGET,
        manager="editor",
        subresource="",
        moment="T3",
    )
    owners = {e["manager"]: field_sets.from_trie(e["fieldsV1"]) for e in edited}
    assert ("f:spec", "f:x") in owners["editor"]
    assert ("f:spec", "f:x") not in owners["ci"]
    live = _obj({"x": "2", "tags": ["a"]}, edited)
    with pytest.raises(ConflictError) as raised:
        applying.apply(
            live, _obj({"x": "3"}), WIDGET, manager="ci", force=False, subresource="", moment="T4"
        )
    assert raised.value.message == (
        'Apply failed with 1 conflict: conflict with "editor" using example.flotta.io/v1'
        " at T3: .spec.x"
    )
    forced = applying.apply(
        live, _obj({"x": "3"}), WIDGET, manager="ci", force=True, subresource="", moment="T4"
    )
    assert forced.obj["spec"] == {"x": "3"}  # tags dropped by ci, owned by nobody else
    managers = {e["manager"] for e in forced.obj["metadata"]["managedFields"]}
    assert "editor" not in managers  # left owning nothing


def test_status_writes_own_only_status() -> None:
    old = {**_obj({"x": "1"}), "status": {}}
    new = {**_obj({"x": "1"}), "status": {"phase": "Ready"}}
    entries = applying.record_update(
        old, new, [], WIDGET, manager="reporter", subresource="status", moment="T"
    )
    assert entries == [
        {
            "manager": "reporter",
            "operation": "Update",
            "apiVersion": "example.flotta.io/v1",
            "time": "T",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:phase": {}}},
            "subresource": "status",
        }
    ]
    assert applying.manager_from_user_agent("kubectl-edit/v1.32.4 (linux/amd64)") == "kubectl-edit"

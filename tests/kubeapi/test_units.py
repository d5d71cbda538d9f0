"""Pure parts of the local API: selectors, patches, schemas, JSONPath, tables, watch hub."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flotta.dev.kubeapi.api import Api
from flotta.dev.kubeapi.cel import check
from flotta.dev.kubeapi.errors import GoneError
from flotta.dev.kubeapi.json_paths import find
from flotta.dev.kubeapi.patches import PatchError, json_patch, merge_patch, strategic_merge_patch
from flotta.dev.kubeapi.resources import PrinterColumn, ResourceType
from flotta.dev.kubeapi.schema import apply_defaults, prune, validate
from flotta.dev.kubeapi.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from flotta.dev.kubeapi.storage import Storage
from flotta.dev.kubeapi.tables import human_duration, table


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("example.com/role=db,tier in (x),!gone", {"example.com/role": "db", "tier": "x"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is matches


@pytest.mark.parametrize("bad", ["a in (1", "=x", "a=b=c d", "a in (x y)", "-a=1"])
def test_bad_label_selectors_are_refused(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selectors() -> None:
    allowed = frozenset({"metadata.name", "metadata.namespace"})
    selector = parse_field_selector("metadata.name=x,metadata.namespace!=kube-system", allowed)
    assert selector.value_of("metadata.name") == "x"
    assert selector.matches(lambda field: {"metadata.name": "x", "metadata.namespace": "a"}[field])
    with pytest.raises(SelectorError, match="field label not supported"):
        parse_field_selector("spec.color=red", allowed)
    trailing = parse_field_selector("metadata.name=x,", allowed)  # empty terms are skipped
    assert trailing.value_of("metadata.name") == "x"
    assert parse_field_selector(",", allowed).requirements == ()


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z",
        "c": {"d": "e"},
    }
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_json_patch_rfc6902() -> None:
    doc: dict[str, Any] = {"a": {"b": [1, 2]}, "c~d": 1, "e/f": 2}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "remove", "path": "/c~0d"},
            {"op": "replace", "path": "/e~1f", "value": 3},
            {"op": "copy", "from": "/a/b", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
            {"op": "test", "path": "/moved/1", "value": 9},
        ],
    )
    assert result == {"a": {"b": [1, 9, 2]}, "e/f": 3, "moved": [1, 9, 2]}
    assert doc["a"]["b"] == [1, 2]  # the input is not modified
    for operations in (
        [{"op": "remove", "path": "/missing"}],
        [{"op": "test", "path": "/a", "value": 1}],
        [{"op": "nope", "path": ""}],
        {"op": "add"},
    ):
        with pytest.raises(PatchError):
            json_patch(doc, operations)


def test_strategic_merge_patch_subset() -> None:
    current = {
        "metadata": {
            "finalizers": ["a"],
            "ownerReferences": [{"uid": "1", "name": "x"}, {"uid": "2", "name": "y"}],
        },
        "data": {"k": "v", "drop": "me"},
        "list": [1, 2],
    }
    patch = {
        "metadata": {
            "finalizers": ["b"],
            "ownerReferences": [{"uid": "2", "name": "z"}, {"uid": "1", "$patch": "delete"}],
            "$setElementOrder/finalizers": ["a", "b"],
        },
        "data": {"$retainKeys": ["k", "new"], "new": "n"},
        "list": [3],
    }
    result = strategic_merge_patch(current, patch)
    assert result["metadata"]["finalizers"] == ["a", "b"]
    assert result["metadata"]["ownerReferences"] == [{"uid": "2", "name": "z"}]
    assert result["data"] == {"k": "v", "new": "n"}
    assert result["list"] == [3]
    removed = strategic_merge_patch(
        result, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    )
    assert removed["metadata"]["finalizers"] == ["b"]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string", "enum": ["a", "b"]},
                "count": {"type": "integer", "minimum": 1, "default": 2},
                "inner": {
                    "type": "object",
                    "properties": {"flag": {"type": "boolean", "default": True}},
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "map": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 2},
                },
                "when": {"type": "string", "format": "date-time"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"n": {"type": "integer", "default": 0}},
                    },
                },
            },
        }
    },
}


def test_prune_default_validate() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {
            "mode": "a",
            "junk": 1,
            "inner": {},
            "free": {"x": {"y": 1}},
            "items": [{"n": 5, "drop": 1}, {}],
        },
        "top": 1,
    }
    assert sorted(prune(obj, SCHEMA)) == ["spec.items[0].drop", "spec.junk", "top"]
    apply_defaults(obj, SCHEMA)
    assert obj["spec"]["count"] == 2
    assert obj["spec"]["inner"] == {"flag": True}
    assert obj["spec"]["items"] == [{"n": 5}, {"n": 0}]
    assert obj["spec"]["free"] == {"x": {"y": 1}}
    assert validate(obj, SCHEMA) == []
    bad = {"spec": {"mode": "c", "count": "3", "map": {"k": "long"}, "when": "yesterday"}}
    causes = {cause.field: cause for cause in validate(bad, SCHEMA)}
    assert causes["spec.mode"].reason == "FieldValueNotSupported"
    assert (
        causes["spec.count"].message
        == 'Invalid value: "3": spec.count in body must be of type integer: "string"'
    )
    assert causes["spec.map.k"].reason == "FieldValueTooLong"
    assert "date-time" in causes["spec.when"].message
    assert validate({"spec": {}}, SCHEMA)[0].field == "spec.mode"


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.all(c, self.exists_one(d, d.name == c.name))", [{"name": "a"}, {"name": "b"}], True),
        (
            "self.all(c, self.exists_one(d, d.name == c.name))",
            [{"name": "a"}, {"name": "a"}],
            False,
        ),
        ("has(self.device) || has(self.deviceSelector)", {"deviceSelector": {}}, True),
        ("has(self.device) || has(self.deviceSelector)", {}, False),
        ("!has(self.lifecycle) && !has(self.startupProbe)", {"lifecycle": {}}, False),
        (
            "size(self.items) <= 2 && self.name.startsWith('ab')",
            {"items": [1], "name": "abc"},
            True,
        ),
        ("self.n > 1 ? self.n < 5 : true", {"n": 7}, False),
        ("'x' in self.tags && self.tags.exists(t, t == 'y')", {"tags": ["x", "y"]}, True),
        ("self.missing == 1", {}, None),
        ("oldSelf == self", 1, None),
        ("self.quantity().isLessThan(1)", {}, None),
    ],
)
def test_cel_subset(rule: str, value: Any, expected: bool | None) -> None:
    assert check(rule, value) is expected


@pytest.mark.parametrize(
    ("rule", "value", "old", "expected"),
    [
        ("self == oldSelf", "a", "a", True),
        ("self == oldSelf", "a", "b", False),
        ("self.n >= oldSelf.n", {"n": 2}, {"n": 3}, False),
        ("!has(oldSelf.x) || has(self.x)", {}, {"x": 1}, False),
        ("self.n > 0", {"n": 1}, {"n": 0}, True),  # not a transition rule: old unused
        (
            "self.l.filter(x, x > 1).size() == 1 && self.l.map(x, x * 2)[1] == 4",
            {"l": [1, 2]},
            {},
            True,
        ),
        ("self.s.matches('^a+$') && 1 + 2 * 3 == 7", {"s": "aa"}, {}, True),
        ("self.s", {"s": "x"}, {}, None),  # not a boolean
        ("self ==", 1, 1, None),  # not CEL
    ],
)
def test_cel_transition_rules_and_full_cel(
    rule: str, value: Any, old: Any, expected: bool | None
) -> None:
    assert check(rule, value, old) is expected


def test_transition_rules_follow_correlated_values() -> None:
    immutable = [{"rule": "self == oldSelf", "message": "immutable"}]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "keyed": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "v": {"type": "integer"}},
                    "x-kubernetes-validations": immutable,
                },
            },
            "atomic": {
                "type": "array",
                "items": {"type": "integer", "x-kubernetes-validations": immutable},
            },
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string", "x-kubernetes-validations": immutable},
            },
            "optional": {
                "type": "string",
                "x-kubernetes-validations": [{**immutable[0], "optionalOldSelf": True}],
            },
        },
    }
    old = {
        "keyed": [{"name": "a", "v": 1}, {"name": "b", "v": 2}],
        "atomic": [1],
        "labels": {"k": "v"},
        "optional": "x",
    }
    new = {
        "keyed": [{"name": "b", "v": 2}, {"name": "a", "v": 9}, {"name": "c", "v": 3}],
        "atomic": [2, 3],  # items of an atomic list do not correlate
        "labels": {"k": "w", "other": "x"},
        "optional": "y",  # optionalOldSelf needs CEL optionals: skipped
    }
    assert [cause.field for cause in validate(new, schema, old=old)] == [
        "keyed[1]",
        "labels.k",
    ]
    assert validate(new, schema) == []  # a create: transition rules do not run


def test_jsonpath_subset() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]
        },
        "l": [{"n": 1}, {"n": 2}],
    }
    assert find(obj, ".status.conditions[?(@.type=='Ready')].status") == ["True"]
    assert find(obj, ".l[*].n") == [1, 2]
    assert find(obj, ".l[1].n") == [2]
    assert find(obj, ".missing.x") == []


def test_table_cells_and_ages() -> None:
    resource = ResourceType(
        "g",
        "v1",
        "things",
        "Thing",
        namespaced=True,
        printer_columns=(
            PrinterColumn("Count", "integer", ".spec.count"),
            PrinterColumn("Ready", "string", ".status.conditions[?(@.type=='Ready')].status"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )
    obj = {
        "metadata": {"name": "t", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"count": 3},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    rendered = table(resource, [obj], resource_version="5")
    assert [c["name"] for c in rendered["columnDefinitions"]] == ["Name", "Count", "Ready", "Age"]
    cells = rendered["rows"][0]["cells"]
    assert cells[:3] == ["t", 3, "True"]
    assert cells[3].endswith("d")
    assert rendered["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert [
        human_duration(s) for s in (5, 150, 3600, 4 * 3600 + 60, 30 * 3600, 3 * 86400, 40 * 86400)
    ] == ["5s", "2m30s", "60m", "4h1m", "30h", "3d", "40d"]
    assert datetime.now(UTC).year >= 2026


async def test_slow_watcher_is_closed_with_410(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db.sqlite")
    try:
        api = Api(storage, history_size=3, queue_size=2)
        configmaps = api.registry.lookup("", "v1", "configmaps")
        assert configmaps is not None
        labels, fields = parse_label_selector(""), parse_field_selector("", frozenset())
        start = api.watch(configmaps, "default", labels, fields, str(storage.resource_version))
        for index in range(5):
            api.create(configmaps, "default", {"metadata": {"name": f"c{index}"}})
        assert start.watcher.expired.is_set()
        assert api.hub.watcher_count() == 0
        assert api.hub.expired_watchers == 1
        with pytest.raises(GoneError):
            api.watch(configmaps, "default", labels, fields, "1")
        await asyncio.sleep(0)
    finally:
        storage.close()


def test_garbage_collection_of_dependents(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db.sqlite")
    try:
        api = Api(storage)
        configmaps = api.registry.lookup("", "v1", "configmaps")
        assert configmaps is not None
        owner = api.create(configmaps, "default", {"metadata": {"name": "owner"}}).load()
        reference = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
        }
        api.create(
            configmaps, "default", {"metadata": {"name": "child", "ownerReferences": [reference]}}
        )
        api.delete(configmaps, "default", "owner")
        assert storage.get(configmaps.key, "default", "child") is None
    finally:
        storage.close()

"""Server-side apply and ``metadata.managedFields``, over the field sets of ``field_sets.py``.

Every write records who changed what: a plain write (create, update, patch) gives its manager
an ``Update`` entry owning the fields it added or changed, and takes those fields from the
other managers; an apply (``apply``) makes the manager's ``Apply`` entry own exactly the
fields of its configuration, removes the fields it applied before and dropped (unless another
manager owns them too), and refuses (409) to change a field another manager owns unless
forced, which moves the ownership.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flotta.dev.kubeapi import field_sets
from flotta.dev.kubeapi.errors import Cause, ConflictError
from flotta.dev.kubeapi.field_sets import Path, Schema
from flotta.dev.kubeapi.resources import ResourceType

Entry = dict[str, Any]  # one managedFields entry
APPLY, UPDATE = "Apply", "Update"
# fields the server owns: never in a field set (as kube-apiserver strips them)
_SERVER_OWNED = frozenset({("f:apiVersion",), ("f:kind",), ("f:metadata",)})
_SERVER_OWNED_META = frozenset(
    ("f:metadata", "f:" + name)
    for name in (
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    )
)
_OBJECT_META: Schema = {
    "type": "object",
    "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "x-kubernetes-list-type": "set"},
        "ownerReferences": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "items": {"type": "object", "x-kubernetes-map-type": "atomic"},
        },
    },
}


def manager_from_user_agent(user_agent: str) -> str:
    """The default fieldManager of a write, as Kubernetes derives it: the user agent's part
    before the first ``/`` (``kubectl-edit/v1.32.4 (linux/amd64) ...`` -> ``kubectl-edit``)."""
    return user_agent.split("/", 1)[0][:128]


def object_schema(resource: ResourceType) -> Schema:
    """The schema field sets are computed with: the CRD's, with ObjectMeta's list types."""
    base = resource.schema or {"type": "object"}
    return {**base, "properties": {**(base.get("properties") or {}), "metadata": _OBJECT_META}}


def _owned(path: Path, resource: ResourceType, subresource: str) -> bool:
    """Whether a write through this endpoint can own ``path``."""
    if path in _SERVER_OWNED or path[:2] in _SERVER_OWNED_META:
        return False
    if not resource.status_subresource:
        return True
    return (path[0] == "f:status") == (subresource == "status")


def _filter(paths: set[Path], resource: ResourceType, subresource: str) -> set[Path]:
    return {path for path in paths if _owned(path, resource, subresource)}


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _matches(entry: Entry, manager: str, operation: str, api_version: str, sub: str) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == operation
        and entry.get("subresource", "") == sub
        and (operation == APPLY or entry.get("apiVersion") == api_version)
    )


def _sorted(entries: list[Entry]) -> list[Entry]:
    live = [e for e in entries if e.get("fieldsV1")]
    return sorted(
        live,
        key=lambda e: (e["operation"], e.get("time", ""), e["manager"], e.get("apiVersion", "")),
    )


def _entry(
    manager: str, operation: str, api_version: str, moment: str, sub: str, fields: field_sets.Trie
) -> Entry:
    entry: Entry = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": moment,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if sub:
        entry["subresource"] = sub
    return entry


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    entries: list[Entry],
    resource: ResourceType,
    *,
    manager: str,
    subresource: str,
    moment: str,
) -> list[Entry]:
    """The managedFields after a plain write of ``new`` over ``old`` (None: a creation).

    Cheap when little changes: unchanged subtrees are skipped by one comparison, and only
    the entries the change touches are copied and edited.
    """
    schema = object_schema(resource)
    change = field_sets.diff(
        _without_managed(old) if old is not None else {}, _without_managed(new), schema
    )
    if not change:
        return entries
    gained = _filter(change.added | change.modified, resource, subresource)
    result: list[Entry] = []
    mine: Entry | None = None
    for entry in entries:
        if _matches(entry, manager, UPDATE, resource.api_version, subresource):
            mine = dict(entry)
            result.append(mine)
            continue
        trie = entry.get("fieldsV1") or {}
        if not any(field_sets.trie_reaches(trie, p) for p in gained | change.removed):
            result.append(entry)  # untouched: neither copied nor edited
            continue
        trie = field_sets.trie_copy(trie)
        for path in gained:
            field_sets.trie_discard(trie, path)
        for path in change.removed:
            field_sets.trie_discard(trie, path, subtree=True)
        result.append({**entry, "fieldsV1": trie})
    if mine is None:
        if not gained:
            return _sorted(result)
        mine = _entry(manager, UPDATE, resource.api_version, moment, subresource, {})
        result.append(mine)
    trie = mine["fieldsV1"]
    if any(field_sets.trie_reaches(trie, p) for p in change.removed) or not all(
        field_sets.trie_holds(trie, p) for p in gained
    ):  # the common case, a manager changing again what it owns, copies nothing
        trie = mine["fieldsV1"] = field_sets.trie_copy(trie)
        for path in change.removed:
            field_sets.trie_discard(trie, path, subtree=True)
        for path in gained:
            field_sets.trie_add(trie, path)
    mine["time"] = moment
    return _sorted(result)


@dataclass(frozen=True)
class Applied:
    """The object after an apply, with its managedFields."""

    obj: dict[str, Any]
    changed: bool


def _manager_name(entry: Entry) -> str:
    name = f'"{entry.get("manager", "")}"'
    if entry.get("subresource"):
        name += f' with subresource "{entry["subresource"]}"'
    if entry.get("operation") == UPDATE:
        name += f" using {entry.get('apiVersion', '')}"
        if entry.get("time"):
            name += f" at {entry['time']}"
    return name


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ConflictError:
    """409 Conflict worded as kube-apiserver words apply conflicts."""
    causes = tuple(
        Cause("FieldManagerConflict", f"conflict with {_manager_name(e)}", field_sets.render(p))
        for e, p in conflicts
    )
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_manager_name(entry)}:"
            f" {field_sets.render(path)}"
        )
    else:
        by_manager: dict[str, list[Path]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(_manager_name(entry), []).append(path)
        lines: list[str] = []
        for name in sorted(by_manager):
            lines.append(f"conflicts with {name}:")
            lines += [f"- {field_sets.render(path)}" for path in sorted(by_manager[name])]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ConflictError(message, causes=causes)


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    resource: ResourceType,
    *,
    manager: str,
    force: bool,
    subresource: str,
    moment: str,
) -> Applied:
    """Merge an applied configuration onto ``live`` (None: the object does not exist).

    Raises ``ConflictError`` when the configuration changes a field another manager owns
    and ``force`` is false.
    """
    schema = object_schema(resource)
    base = _without_managed(live) if live is not None else {}
    entries: list[Entry] = list((live or {}).get("metadata", {}).get("managedFields") or [])
    applied = _filter(field_sets.field_set(config, schema), resource, subresource)
    merged = field_sets.merge(base, _without_managed(config), schema)
    change = field_sets.diff(base, merged, schema)
    changed_paths = (change.added | change.modified) & applied
    previous: set[Path] = set()
    others: list[tuple[Entry, set[Path]]] = []
    conflicts: list[tuple[Entry, Path]] = []
    for entry in entries:
        owned = field_sets.from_trie(entry.get("fieldsV1") or {})
        if _matches(entry, manager, APPLY, resource.api_version, subresource):
            previous = owned
            continue
        conflicts += [(entry, path) for path in sorted(owned & changed_paths)]
        others.append((entry, owned))
    if conflicts and not force:
        raise conflict_error(conflicts)
    stolen = {path for _, path in conflicts}
    still_owned: set[Path] = set()
    kept: list[Entry] = []
    for entry, owned in others:
        if stolen & owned:
            owned = owned - stolen
            entry = {**entry, "fieldsV1": field_sets.to_trie(owned)}
        still_owned |= owned
        kept.append(entry)
    # what this manager dropped goes, unless it still holds something applied or owned
    kept_prefixes = {p[:i] for p in applied | still_owned for i in range(1, len(p) + 1)}
    for path in sorted(previous - applied, key=len):  # a removed item takes its fields
        if path not in kept_prefixes:
            field_sets.remove(merged, path, schema)
    changed = merged != base or previous != applied or bool(stolen)
    mine_time = moment
    if not changed:
        mine_time = next(
            (
                str(e.get("time", moment))
                for e in entries
                if _matches(e, manager, APPLY, resource.api_version, subresource)
            ),
            moment,
        )
    kept.append(
        _entry(
            manager,
            APPLY,
            resource.api_version,
            mine_time,
            subresource,
            field_sets.to_trie(applied),
        )
    )
    merged.setdefault("metadata", {})["managedFields"] = _sorted(kept)
    return Applied(merged, changed)

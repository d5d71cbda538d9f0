"""Field sets of server-side apply, apart from HTTP and storage: pure functions on objects.

A path is a tuple of elements in the fieldset encoding of ``managedFields``: ``f:name``
(a field or map key), ``k:{"name":"a"}`` (an item of a list keyed by
``x-kubernetes-list-map-keys``) and ``v:"x"`` (an item of a ``set`` list). Lists without
``x-kubernetes-list-type`` (and every list of a kind without a schema) are atomic: owned
whole, by the list's own path. Maps are granular unless ``x-kubernetes-map-type: atomic``.

A set of paths is stored as a trie (``{"f:spec": {"f:x": {}}}``): a leaf ``{}`` is a member,
an inner node is a member when it holds ``".": {}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]
Schema = dict[str, Any]
Trie = dict[str, Any]
_SELF = "."


def child_schema(schema: Schema | None, key: str) -> tuple[Schema | None, bool]:
    """The schema of field ``key`` and whether it is a declared (struct) field."""
    if schema is None:
        return None, False
    properties = schema.get("properties")
    if properties and key in properties:
        return properties[key], True
    additional = schema.get("additionalProperties")
    return (additional if isinstance(additional, dict) else None), False


def list_type(schema: Schema | None) -> str:
    return str((schema or {}).get("x-kubernetes-list-type") or "atomic")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def item_element(item: Any, schema: Schema | None) -> str:
    """The path element of one item of a ``map`` or ``set`` list."""
    if list_type(schema) == "map":
        keys = (schema or {}).get("x-kubernetes-list-map-keys") or ()
        source = item if isinstance(item, dict) else {}
        return "k:" + _compact({key: source[key] for key in keys if key in source})
    return "v:" + _compact(item)


def _atomic_map(schema: Schema | None) -> bool:
    return (schema or {}).get("x-kubernetes-map-type") == "atomic"


def field_set(value: Any, schema: Schema | None) -> set[Path]:
    """The paths an applied configuration sets (leaves, list items, map entries)."""
    out: set[Path] = set()
    _collect(value, schema, (), out, containers=False)
    return out


def all_paths(value: Any, schema: Schema | None, path: Path = ()) -> set[Path]:
    """Every path of ``value`` below ``path``, containers included (what a write adds)."""
    out: set[Path] = set()
    _collect(value, schema, path, out, containers=True)
    return out


def _collect(
    value: Any, schema: Schema | None, path: Path, out: set[Path], *, containers: bool
) -> None:
    if isinstance(value, dict) and value and not _atomic_map(schema):
        for key, child in value.items():
            sub, declared = child_schema(schema, key)
            step = (*path, "f:" + key)
            _collect(child, sub, step, out, containers=containers)
            if containers or not declared or child is None or child == {}:
                out.add(step)
        return
    if isinstance(value, list) and list_type(schema) != "atomic":
        items = (schema or {}).get("items")
        for item in value:
            step = (*path, item_element(item, schema))
            if list_type(schema) == "map":
                _collect(item, items, step, out, containers=containers)
            out.add(step)
        return
    if path:
        out.add(path)


@dataclass
class Diff:
    """What a write changed: paths added (containers included), leaves modified, subtrees
    removed."""

    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed)


def diff(old: Any, new: Any, schema: Schema | None, path: Path = ()) -> Diff:
    result = Diff()
    _diff(old, new, schema, path, result)
    return result


def _keyed(values: list[Any], schema: Schema | None) -> dict[str, Any]:
    return {item_element(item, schema): item for item in values}


def _diff(old: Any, new: Any, schema: Schema | None, path: Path, result: Diff) -> None:
    if old == new and type(old) is type(new):
        return
    if isinstance(old, dict) and isinstance(new, dict) and not _atomic_map(schema):
        for key in old.keys() | new.keys():
            sub, _ = child_schema(schema, key)
            step = (*path, "f:" + key)
            if key not in new:
                result.removed.add(step)
            elif key not in old:
                result.added |= all_paths(new[key], sub, step)
                result.added.add(step)
            else:
                _diff(old[key], new[key], sub, step, result)
        return
    if isinstance(old, list) and isinstance(new, list) and list_type(schema) != "atomic":
        items = (schema or {}).get("items")
        before, after = _keyed(old, schema), _keyed(new, schema)
        for element in before.keys() - after.keys():
            result.removed.add((*path, element))
        for element, item in after.items():
            step = (*path, element)
            if element not in before:
                if list_type(schema) == "map":
                    result.added |= all_paths(item, items, step)
                result.added.add(step)
            elif list_type(schema) == "map":
                _diff(before[element], item, items, step, result)
        return
    granular = (isinstance(old, dict) and not _atomic_map(schema)) or (
        isinstance(old, list) and list_type(schema) != "atomic"
    )
    if granular and old:  # a granular value replaced by one of another type
        result.removed.add(path)
        result.added |= all_paths(new, schema, path)
        result.added.add(path)
    else:
        result.modified.add(path)


# ---- tries (the fieldsV1 encoding) ------------------------------------------------------


def to_trie(paths: set[Path]) -> Trie:
    root: Trie = {}
    for path in paths:
        trie_add(root, path)
    return root


def from_trie(trie: Trie, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, child in trie.items():
        if key == _SELF:
            continue
        step = (*prefix, key)
        if not child or _SELF in child:
            out.add(step)
        if child:
            out |= from_trie(child, step)
    return out


def trie_add(trie: Trie, path: Path) -> None:
    node = trie
    last = len(path) - 1
    for index, element in enumerate(path):
        existing = node.get(element)
        if existing is None:
            existing = node[element] = {}
        elif not existing and index != last:
            existing[_SELF] = {}  # a member leaf that is getting children
        node = existing
    if node and _SELF not in node and path:
        node[_SELF] = {}


def _node_at(trie: Trie, path: Path) -> Trie | None:
    node = trie
    for element in path:
        child = node.get(element)
        if child is None:
            return None
        node = child
    return node


def trie_reaches(trie: Trie, path: Path) -> bool:
    """Whether the trie holds a node at ``path`` (a member or not)."""
    return _node_at(trie, path) is not None


def trie_holds(trie: Trie, path: Path) -> bool:
    """Whether ``path`` is a member of the trie."""
    node = _node_at(trie, path)
    return node is not None and (not node or _SELF in node)


def trie_copy(trie: Trie) -> Trie:
    """A copy to edit (tries hold nothing but nested dicts)."""
    return {key: trie_copy(child) if child else {} for key, child in trie.items()}


def trie_discard(trie: Trie, path: Path, *, subtree: bool = False) -> bool:
    """Remove ``path`` (with its descendants when ``subtree``); True when anything went."""
    if not path:
        return False
    head, rest = path[0], path[1:]
    node = trie.get(head)
    if node is None:
        return False
    if rest:
        changed = trie_discard(node, rest, subtree=subtree)
        if changed and not node:
            del trie[head]  # an inner node left without members
        elif changed and list(node) == [_SELF]:
            trie[head] = {}
        return changed
    if subtree or not node:
        del trie[head]
    elif _SELF in node:
        del node[_SELF]
    else:
        return False
    return True


def render(path: Path) -> str:
    """``(f:spec, k:{"name":"a"}, f:x)`` -> ``.spec[name="a"].x`` (as in conflict messages)."""
    parts: list[str] = []
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f":
            parts.append("." + text)
        elif kind == "k":
            keys = json.loads(text)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        else:
            parts.append(f"[={text}]")
    return "".join(parts)


# ---- merging an applied configuration ---------------------------------------------------


def merge(live: Any, config: Any, schema: Schema | None) -> Any:
    """``config`` merged onto ``live``: maps and keyed lists by member, sets by value, the
    rest replaced. A null in ``config`` removes the field."""
    if isinstance(live, dict) and isinstance(config, dict) and not _atomic_map(schema):
        result = dict(live)
        for key, value in config.items():
            if value is None:
                result.pop(key, None)
            elif key in live:
                result[key] = merge(live[key], value, child_schema(schema, key)[0])
            else:
                result[key] = value
        return result
    if isinstance(live, list) and isinstance(config, list) and list_type(schema) != "atomic":
        items = (schema or {}).get("items")
        merged = _keyed(live, schema)
        for element, item in _keyed(config, schema).items():
            if element in merged and list_type(schema) == "map":
                merged[element] = merge(merged[element], item, items)
            else:
                merged[element] = item
        return list(merged.values())
    return config


def remove(obj: Any, path: Path, schema: Schema | None) -> None:
    """Delete the field or list item at ``path`` from ``obj`` in place (absent: nothing)."""
    node, node_schema = obj, schema
    for index, element in enumerate(path):
        last = index == len(path) - 1
        kind, _, text = element.partition(":")
        if kind == "f" and isinstance(node, dict):
            if last:
                node.pop(text, None)
                return
            node, node_schema = node.get(text), child_schema(node_schema, text)[0]
        elif kind in ("k", "v") and isinstance(node, list):
            found = next(
                (i for i, item in enumerate(node) if item_element(item, node_schema) == element),
                None,
            )
            if found is None:
                return
            if last:
                del node[found]
                return
            node, node_schema = node[found], (node_schema or {}).get("items")
        else:
            return

"""The JSONPath subset printer columns use.

``.a.b``, ``.a[0]``, ``.a[*].b`` and ``.a[?(@.k=='v')].b``.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_$-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*(['\"])(.*?)\4\)\]"
)


class JsonPathError(ValueError):
    """A path outside the supported subset."""


def compile_path(path: str) -> list[tuple[str, str, str]]:
    """Tokens as (kind, key, value) with kind one of field, index, all, filter."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    position = 0
    tokens: list[tuple[str, str, str]] = []
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        field, index, filter_key, _, filter_value = match.groups()
        if field is not None:
            tokens.append(("field", field, ""))
        elif index == "*":
            tokens.append(("all", "", ""))
        elif index is not None:
            tokens.append(("index", index, ""))
        else:
            tokens.append(("filter", filter_key, filter_value))
        position = match.end()
    return tokens


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def find(obj: Any, path: str) -> list[Any]:
    """Every value the path selects in ``obj`` (empty when nothing matches)."""
    nodes = [obj]
    for kind, key, value in compile_path(path):
        selected: list[Any] = []
        for node in nodes:
            if kind == "field" and isinstance(node, dict) and key in node:
                selected.append(node[key])
            elif kind == "index" and isinstance(node, list) and int(key) < len(node):
                selected.append(node[int(key)])
            elif kind == "all" and isinstance(node, list):
                selected.extend(node)
            elif kind == "filter" and isinstance(node, list):
                selected.extend(item for item in node if str(_dig(item, key)) == value)
        nodes = selected
    return nodes

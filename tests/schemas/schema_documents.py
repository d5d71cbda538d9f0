"""Hypothesis strategy: JSON documents that a JSON Schema allows, for the keywords the
contract's schemas use (``$ref``/``$defs``, ``anyOf``, ``const``/``enum``, types with their
bounds, ``pattern``, ``properties``/``required``/``additionalProperties``).

hypothesis-jsonschema would be the library for this, but its last release (0.23.1) fails with
current Hypothesis (``AttributeError: 'many' object has no attribute 'more'``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = st.none() | st.booleans() | st.integers(-100, 100) | st.text(max_size=8)
MAX_ITEMS = 4
MAX_EXTRA_PROPERTIES = 3


def documents(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _node(schema, schema.get("$defs", {}))


def _node(node: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        return _node(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        return st.one_of([_node(option, defs) for option in node["anyOf"]])
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        return _object(node, defs)
    if kind == "array":
        items = _node(node.get("items", {}), defs)
        high = min(node.get("maxItems", MAX_ITEMS), node.get("minItems", 0) + MAX_ITEMS)
        return st.lists(items, min_size=node.get("minItems", 0), max_size=high)
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum"))
    if kind == "number":
        return st.floats(
            node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON_SCALARS  # an unconstrained value


def _time(when: datetime, zulu: bool) -> str:
    text = when.isoformat()
    return text.replace("+00:00", "Z") if zulu else text


TIMES = st.builds(
    _time,
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.timezones(),
    ),
    st.booleans(),
)


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    if node.get("format") == "date-time":
        return TIMES  # drawn from the pattern, most would be days that do not exist
    low, high = node.get("minLength", 0), min(node.get("maxLength", 24), 24)
    if "pattern" in node:
        strings = st.from_regex(node["pattern"], fullmatch=True)
        return strings.filter(lambda s: low <= len(s) <= node.get("maxLength", len(s)))
    return st.text(min_size=low, max_size=max(low, high))


def _object(node: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    fixed = {name: _node(properties[name], defs) for name in properties if name in required}
    optional = {name: _node(properties[name], defs) for name in properties if name not in required}
    extra = node.get("additionalProperties", True)
    known = st.fixed_dictionaries(fixed, optional=optional)
    if extra is False:
        return known
    values = JSON_SCALARS if extra is True else _node(extra, defs)
    keys = st.text(min_size=1, max_size=12).filter(lambda key: key not in properties)
    more = st.dictionaries(keys, values, max_size=MAX_EXTRA_PROPERTIES)
    return st.builds(lambda a, b: {**b, **a}, known, more)

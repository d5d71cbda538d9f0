"""Label and field selectors: pure parsers and matchers.

Label selectors accept ``=``, ``==``, ``!=``, ``in``, ``notin``, ``key`` (exists) and ``!key``;
field selectors accept ``=``, ``==`` and ``!=`` on the fields a resource allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_./]*[a-z0-9A-Z])?)$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class SelectorError(ValueError):
    """A selector that does not parse."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # one of "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label, like Kubernetes
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str, text: str) -> str:
    if not key or len(key) > 317 or not _KEY.match(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


_SET_OP = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")


def _parse_requirement(part: str, text: str) -> Requirement:
    part = part.strip()
    if not part:
        raise SelectorError(f"empty requirement in selector {text!r}")
    set_match = _SET_OP.match(part)
    if set_match:
        key, operator, raw_values = set_match.groups()
        values = frozenset(_check_value(v.strip(), text) for v in raw_values.split(","))
        return Requirement(_check_key(key, text), operator, values)
    for token, operator in (("!=", "!="), ("==", "="), ("=", "=")):
        if token in part:
            key, _, value = part.partition(token)
            return Requirement(
                _check_key(key.strip(), text),
                operator,
                frozenset({_check_value(value.strip(), text)}),
            )
    if part.startswith("!"):
        return Requirement(_check_key(part[1:].strip(), text), "!exists")
    return Requirement(_check_key(part, text), "exists")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``labelSelector``; an empty or missing selector matches everything."""
    if text is None or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_requirement(p, text) for p in _split_top_level(text)))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negated: bool
    value: str


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, get_field: Callable[[str], str]) -> bool:
        for requirement in self.requirements:
            equal = get_field(requirement.field) == requirement.value
            if equal == requirement.negated:
                return False
        return True

    def value_of(self, field: str) -> str | None:
        """The value a requirement pins ``field`` to (``field=value``), if any."""
        for requirement in self.requirements:
            if requirement.field == field and not requirement.negated:
                return requirement.value
        return None


def parse_field_selector(text: str | None, allowed: frozenset[str]) -> FieldSelector:
    """Parse ``fieldSelector``; fields outside ``allowed`` are refused like Kubernetes does."""
    if text is None or not text.strip():
        return FieldSelector()
    requirements: list[FieldRequirement] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue  # kube-apiserver skips empty terms ("a=b," and kr8s' own selectors)
        operator = next((op for op in ("!=", "==", "=") if op in part), None)
        if operator is None:
            raise SelectorError(f"invalid field selector requirement {part!r}")
        field, _, value = part.partition(operator)
        field = field.strip()
        negated = operator == "!="
        if field not in allowed:
            raise SelectorError(f'field label not supported: "{field}"')
        requirements.append(FieldRequirement(field, negated, value.strip()))
    return FieldSelector(tuple(requirements))


def field_getter(obj: Mapping[str, Any]) -> Callable[[str], str]:
    """Read a dotted field path from an object as a string ("" when absent)."""

    def get(path: str) -> str:
        node: Any = obj
        for segment in path.split("."):
            if not isinstance(node, Mapping):
                return ""
            node = node.get(segment)
        if node is None:
            return ""
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    return get

"""Label selectors (metav1.LabelSelector) evaluated against device labels: pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flotta.operator.errors import SelectorError
from flotta.schemas.crd.common import LabelSelector


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case "In":
                return labels.get(self.key) in self.values
            case "NotIn":
                return labels.get(self.key) not in self.values
            case "Exists":
                return self.key in labels
            case _:
                return self.key not in labels


@dataclass(frozen=True, slots=True)
class Selector:
    """A compiled selector. ``match_labels`` also serves the label index as equality terms."""

    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(requirement.matches(labels) for requirement in self.requirements)


def compile_selector(selector: LabelSelector) -> Selector:
    """Compile a selector; raise SelectorError for In/NotIn without values or
    Exists/DoesNotExist with values (the API server refuses those too)."""
    requirements = []
    for expression in selector.match_expressions:
        has_values = bool(expression.values)
        if expression.operator in ("In", "NotIn") and not has_values:
            raise SelectorError(f"{expression.key} {expression.operator}: needs values")
        if expression.operator in ("Exists", "DoesNotExist") and has_values:
            raise SelectorError(f"{expression.key} {expression.operator}: takes no values")
        requirements.append(
            Requirement(expression.key, expression.operator, frozenset(expression.values))
        )
    return Selector(tuple(sorted(selector.match_labels.items())), tuple(requirements))

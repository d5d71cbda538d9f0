"""Auto-approval policy for enrolment requests, given on the command line
(``--auto-approve NAMESPACE`` or ``--auto-approve NAMESPACE/SET``, repeatable, ``*`` for all).
Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flotta.operator.errors import OperatorError
from flotta.schemas.topics import NAMESPACE_PATTERN

ANY = "*"


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """Requests approved without an admin: every request (``*``), every request targeting a
    namespace, or every request targeting one set of a namespace."""

    everything: bool = False
    namespaces: frozenset[str] = frozenset()
    sets: frozenset[tuple[str, str]] = frozenset()

    def approves(self, namespace: str, target_set: str) -> bool:
        return (
            self.everything
            or namespace in self.namespaces
            or (bool(target_set) and (namespace, target_set) in self.sets)
        )

    @classmethod
    def parse(cls, entries: Iterable[str]) -> ApprovalPolicy:
        everything = False
        namespaces: set[str] = set()
        sets: set[tuple[str, str]] = set()
        for raw in entries:
            entry = raw.strip()
            if entry == ANY:
                everything = True
                continue
            namespace, _, set_name = entry.partition("/")
            if not NAMESPACE_PATTERN.fullmatch(namespace) or ("/" in entry and not set_name):
                raise OperatorError(
                    f"--auto-approve {raw!r}: expected '*', NAMESPACE or NAMESPACE/SET"
                )
            if set_name:
                sets.add((namespace, set_name))
            else:
                namespaces.add(namespace)
        return cls(everything, frozenset(namespaces), frozenset(sets))

"""RBAC (``rbac.authorization.k8s.io/v1``), pure: whether a user may make a request, and why.

The semantics are kube-apiserver's RBAC authorizer's (``plugin/pkg/auth/authorizer/rbac``):

- A ClusterRoleBinding grants its ClusterRole's rules everywhere (every namespace and the
  cluster scope); a RoleBinding grants its Role's, or a ClusterRole's, rules in its own
  namespace only.
- A rule allows a request when its verbs hold the verb (or ``*``), its apiGroups the group
  (or ``*``), its resources the resource, ``resource/subresource`` for a subresource (or
  ``*``, or ``*/subresource``), and its resourceNames the name, if it lists any (a request
  without a name, a list or a create, never matches a rule with resourceNames). A rule with
  nonResourceURLs allows paths (``/version``, or a prefix ending in ``*``) instead.
- Subjects: a ``User`` by name, a ``Group`` by the user's groups, a ``ServiceAccount`` as
  the user ``system:serviceaccount:NAMESPACE:NAME`` (a RoleBinding's subject without a
  namespace is in the binding's namespace).
- The group ``system:masters`` is allowed everything without looking at any rule, as the
  apiserver's privileged-group authorizer does.

Nothing here does I/O: ``Policy`` is built from the stored objects by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GROUP = "rbac.authorization.k8s.io"
PRIVILEGED_GROUP = "system:masters"
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ALL = "*"
Obj = dict[str, Any]


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def privileged(self) -> bool:
        return PRIVILEGED_GROUP in self.groups


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The user a service account's token authenticates as, with the groups it gets."""
    return UserInfo(
        f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        uid,
    )


def service_account_of(username: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:NAMESPACE:NAME``, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    return (namespace, name) if namespace and name and ":" not in name else None


@dataclass(frozen=True)
class Attributes:
    """What a request asks for, as kube-apiserver's RequestInfo and authorizer see it."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    path: str = ""  # non-resource requests
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _has(values: tuple[str, ...], wanted: str) -> bool:
    return ALL in values or wanted in values


def _strings(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(str(value) for value in raw)


@dataclass(frozen=True)
class Rule:
    """One PolicyRule."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> Rule:
        raw = raw if isinstance(raw, dict) else {}
        return cls(
            verbs=_strings(raw.get("verbs")),
            api_groups=_strings(raw.get("apiGroups")),
            resources=_strings(raw.get("resources")),
            resource_names=_strings(raw.get("resourceNames")),
            non_resource_urls=_strings(raw.get("nonResourceURLs")),
        )

    def allows(self, request: Attributes) -> bool:
        if not _has(self.verbs, request.verb):
            return False
        if not request.resource_request:
            return any(_url_matches(url, request.path) for url in self.non_resource_urls)
        return (
            _has(self.api_groups, request.api_group)
            and self._resource_matches(request)
            and (not self.resource_names or request.name in self.resource_names)
        )

    def _resource_matches(self, request: Attributes) -> bool:
        combined = request.combined_resource
        for resource in self.resources:
            if resource in (ALL, combined):
                return True
            if request.subresource and resource == f"*/{request.subresource}":
                return True
        return False

    def as_dict(self) -> Obj:
        """The rule as a PolicyRule object (empty lists left out, as the API serves them)."""
        fields = (
            ("verbs", self.verbs),
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        )
        return {key: list(values) for key, values in fields if values or key == "verbs"}


def _url_matches(rule_url: str, path: str) -> bool:
    if rule_url in (ALL, path):
        return True
    return rule_url.endswith("*") and path.startswith(rule_url[:-1])


@dataclass(frozen=True)
class Subject:
    kind: str
    name: str
    namespace: str = ""

    def applies_to(self, user: UserInfo, binding_namespace: str) -> bool:
        if self.kind == "User":
            return user.name == self.name
        if self.kind == "Group":
            return self.name in user.groups
        if self.kind == "ServiceAccount":
            namespace = self.namespace or binding_namespace
            return (
                bool(namespace) and user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{self.name}"
            )
        return False

    def describe(self, binding_namespace: str) -> str:
        if self.kind == "ServiceAccount":
            return f'{self.kind} "{self.name}/{self.namespace or binding_namespace}"'
        return f'{self.kind} "{self.name}"'


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (``namespace`` set) or a ClusterRoleBinding."""

    name: str
    namespace: str
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]

    @classmethod
    def parse(cls, obj: Obj) -> Binding:
        meta = obj.get("metadata") or {}
        ref = obj.get("roleRef") or {}
        subjects = tuple(
            Subject(str(s.get("kind", "")), str(s.get("name", "")), str(s.get("namespace") or ""))
            for s in obj.get("subjects") or ()
            if isinstance(s, dict)
        )
        return cls(
            str(meta.get("name", "")),
            str(meta.get("namespace") or ""),
            str(ref.get("kind", "")),
            str(ref.get("name", "")),
            subjects,
        )

    def subject_for(self, user: UserInfo) -> Subject | None:
        return next((s for s in self.subjects if s.applies_to(user, self.namespace)), None)

    def describe(self, subject: Subject) -> str:
        if self.namespace:
            return (
                f'RoleBinding "{self.name}/{self.namespace}" of {self.role_kind}'
                f' "{self.role_name}" to {subject.describe(self.namespace)}'
            )
        return (
            f'ClusterRoleBinding "{self.name}" of {self.role_kind} "{self.role_name}"'
            f" to {subject.describe('')}"
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # kube-apiserver's: "RBAC: allowed by ...", or the errors met


@dataclass(frozen=True)
class Grant:
    """A rule, and the binding through which a user holds it."""

    rule: Rule
    source: str  # "ClusterRoleBinding \"x\" of ClusterRole \"y\" to ServiceAccount \"a/b\""


def _not_found(kind: str, name: str) -> str:
    return f'{kind.lower()}.{GROUP} "{name}" not found'


class Policy:
    """The stored roles and bindings, indexed for decisions."""

    def __init__(
        self,
        roles: Iterable[Obj] = (),
        cluster_roles: Iterable[Obj] = (),
        role_bindings: Iterable[Obj] = (),
        cluster_role_bindings: Iterable[Obj] = (),
    ) -> None:
        self._roles = {
            (str(r["metadata"].get("namespace") or ""), str(r["metadata"]["name"])): _rules(r)
            for r in roles
        }
        self._cluster_roles = {str(r["metadata"]["name"]): _rules(r) for r in cluster_roles}
        self._role_bindings: dict[str, list[Binding]] = {}
        for obj in role_bindings:
            binding = Binding.parse(obj)
            self._role_bindings.setdefault(binding.namespace, []).append(binding)
        self._cluster_role_bindings = [Binding.parse(obj) for obj in cluster_role_bindings]

    def _role_rules(self, binding: Binding) -> tuple[Rule, ...] | str:
        """The rules a binding refers to, or the error kube-apiserver reports."""
        if binding.role_kind == "ClusterRole":
            rules = self._cluster_roles.get(binding.role_name)
        elif binding.role_kind == "Role" and binding.namespace:
            rules = self._roles.get((binding.namespace, binding.role_name))
        else:
            return f"unsupported role reference kind: {binding.role_kind!r}"
        return _not_found(binding.role_kind, binding.role_name) if rules is None else rules

    def grants(self, user: UserInfo, namespace: str) -> Iterator[Grant | str]:
        """Every rule the user holds for requests in ``namespace`` ("" for the cluster
        scope), ClusterRoleBindings first; a string for each binding whose role is missing."""
        bindings = [*self._cluster_role_bindings]
        if namespace:
            bindings += self._role_bindings.get(namespace, [])
        for binding in bindings:
            subject = binding.subject_for(user)
            if subject is None:
                continue
            rules = self._role_rules(binding)
            if isinstance(rules, str):
                yield rules
                continue
            source = binding.describe(subject)
            for rule in rules:
                yield Grant(rule, source)

    def authorize(self, request: Attributes) -> Decision:
        if request.user.privileged:
            return Decision(True)
        errors: list[str] = []
        for grant in self.grants(request.user, request.namespace):
            if isinstance(grant, str):
                if grant not in errors:
                    errors.append(grant)
            elif grant.rule.allows(request):
                return Decision(True, f"RBAC: allowed by {grant.source}")
        if not errors:
            return Decision(False)
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return Decision(False, f"RBAC: {joined}")

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """What SelfSubjectRulesReview lists: the user's rules in ``namespace`` and the errors
        met (missing roles)."""
        rules: list[Rule] = []
        errors: list[str] = []
        for grant in self.grants(user, namespace):
            if isinstance(grant, str):
                errors.append(grant)
            elif grant.rule not in rules:
                rules.append(grant.rule)
        return rules, errors


def _rules(role: Obj) -> tuple[Rule, ...]:
    return tuple(Rule.parse(raw) for raw in role.get("rules") or ())


def forbidden_message(request: Attributes, reason: str = "") -> str:
    """kube-apiserver's 403 message (``responsewriters.Forbidden`` and ``NewForbidden``)."""
    user = request.user.name
    if not request.resource_request:
        detail = f'User "{user}" cannot {request.verb} path "{request.path}"'
        prefix = "forbidden"
    else:
        scope = (
            f'in the namespace "{request.namespace}"'
            if request.namespace
            else "at the cluster scope"
        )
        detail = (
            f'User "{user}" cannot {request.verb} resource "{request.combined_resource}"'
            f' in API group "{request.api_group}" {scope}'
        )
        qualified = (
            f"{request.resource}.{request.api_group}" if request.api_group else request.resource
        )
        prefix = (
            f'{qualified} "{request.name}" is forbidden'
            if request.name
            else (f"{qualified} is forbidden")
        )
    if reason:
        detail = f"{detail}: {reason}"
    return f"{prefix}: {detail}"

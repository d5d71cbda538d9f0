"""Defaulting and validation of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings,
with kube-apiserver's field paths and messages (``pkg/apis/rbac/validation``). Pure."""

from __future__ import annotations

import json
from typing import Any

from flotta.dev.kubeapi.errors import Cause
from flotta.dev.kubeapi.rbac import GROUP, Obj, Rule


def default(kind: str, obj: Obj) -> None:
    """API defaults: roleRef and User/Group subjects in the RBAC group."""
    if kind not in ("RoleBinding", "ClusterRoleBinding"):
        return
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in obj.get("subjects") or ():
        if (
            isinstance(subject, dict)
            and subject.get("kind") in ("User", "Group")
            and not subject.get("apiGroup")
        ):
            subject["apiGroup"] = GROUP


def _unsupported(value: Any, supported: tuple[str, ...], field: str) -> Cause:
    values = ", ".join(json.dumps(s) for s in supported)
    return Cause(
        "FieldValueNotSupported",
        f"Unsupported value: {json.dumps(value)}: supported values: {values}",
        field,
    )


def _required(field: str, detail: str = "") -> Cause:
    return Cause(
        "FieldValueRequired", f"Required value: {detail}" if detail else "Required value", field
    )


def _rule_causes(raw: Any, namespaced: bool, field: str) -> list[Cause]:
    rule = Rule.parse(raw)
    causes = []
    if not rule.verbs:
        causes.append(_required(f"{field}.verbs", "verbs must contain at least one value"))
    if rule.non_resource_urls:
        urls = "[]string{" + ", ".join(json.dumps(u) for u in rule.non_resource_urls) + "}"
        if namespaced:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {urls}: namespaced rules cannot apply to non-resource URLs",
                    f"{field}.nonResourceURLs",
                )
            )
        if rule.api_groups or rule.resources or rule.resource_names:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {urls}: rules cannot apply to both regular resources and"
                    " non-resource URLs",
                    f"{field}.nonResourceURLs",
                )
            )
        return causes
    if not rule.api_groups:
        causes.append(
            _required(f"{field}.apiGroups", "resource rules must supply at least one api group")
        )
    if not rule.resources:
        causes.append(
            _required(f"{field}.resources", "resource rules must supply at least one resource")
        )
    return causes


def _role_ref_text(ref: Any) -> str:
    ref = ref if isinstance(ref, dict) else {}
    group, kind, name = (json.dumps(str(ref.get(k, ""))) for k in ("apiGroup", "kind", "name"))
    return f"rbac.RoleRef{{APIGroup:{group}, Kind:{kind}, Name:{name}}}"


def validate(kind: str, obj: Obj, old: Obj | None = None) -> list[Cause]:
    """The causes kube-apiserver's validation gives for a Role, ClusterRole, RoleBinding or
    ClusterRoleBinding (``pkg/apis/rbac/validation``)."""
    causes: list[Cause] = []
    if kind in ("Role", "ClusterRole"):
        rules = obj.get("rules")
        if rules is not None and not isinstance(rules, list):
            return [Cause("FieldValueInvalid", "Invalid value: must be a list", "rules")]
        for index, raw in enumerate(rules or ()):
            causes += _rule_causes(raw, kind == "Role", f"rules[{index}]")
        return causes
    if kind not in ("RoleBinding", "ClusterRoleBinding"):
        return causes
    namespaced = kind == "RoleBinding"
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        return [_required("roleRef")]
    if ref.get("apiGroup") != GROUP:
        causes.append(_unsupported(ref.get("apiGroup", ""), (GROUP,), "roleRef.apiGroup"))
    allowed = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind") not in allowed:
        causes.append(_unsupported(ref.get("kind", ""), allowed, "roleRef.kind"))
    if not ref.get("name"):
        causes.append(_required("roleRef.name"))
    subjects = obj.get("subjects") or []
    for index, subject in enumerate(subjects if isinstance(subjects, list) else []):
        causes += _subject_causes(subject, namespaced, f"subjects[{index}]")
    if old is not None and (old.get("roleRef") or {}) != ref:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {_role_ref_text(ref)}: cannot change roleRef",
                "roleRef",
            )
        )
    return causes


def _subject_causes(subject: Any, namespaced: bool, field: str) -> list[Cause]:
    if not isinstance(subject, dict):
        return [Cause("FieldValueInvalid", "Invalid value: must be an object", field)]
    causes = []
    if not subject.get("name"):
        causes.append(_required(f"{field}.name"))
    kind = subject.get("kind", "")
    if kind == "ServiceAccount":
        if subject.get("apiGroup"):
            causes.append(_unsupported(subject["apiGroup"], ("",), f"{field}.apiGroup"))
        if not namespaced and not subject.get("namespace"):
            causes.append(_required(f"{field}.namespace"))
    elif kind in ("User", "Group"):
        if subject.get("apiGroup") != GROUP:
            causes.append(_unsupported(subject.get("apiGroup", ""), (GROUP,), f"{field}.apiGroup"))
    else:
        causes.append(_unsupported(kind, ("ServiceAccount", "User", "Group"), f"{field}.kind"))
    return causes

"""The review kinds, pure: ``authorization.k8s.io/v1`` SelfSubjectAccessReview,
SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectRulesReview (``kubectl auth
can-i``, also ``--list``), ``authentication.k8s.io/v1`` SelfSubjectReview (``kubectl auth
whoami``) and TokenReview. Each takes the request body and answers it with its status; none
is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flotta.dev.kubeapi.errors import BadRequestError, Cause, InvalidError
from flotta.dev.kubeapi.rbac import (
    AUTHENTICATED,
    Attributes,
    Policy,
    UserInfo,
    service_account_of,
    service_account_user,
)

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
Obj = dict[str, Any]
# (token, audiences) -> the user it authenticates and the audiences it is valid for, or None
TokenUser = Callable[[str, tuple[str, ...]], tuple[UserInfo, tuple[str, ...]] | None]

# plural -> (group, kind, namespaced)
KINDS = {
    "selfsubjectaccessreviews": (AUTHORIZATION, "SelfSubjectAccessReview", False),
    "subjectaccessreviews": (AUTHORIZATION, "SubjectAccessReview", False),
    "localsubjectaccessreviews": (AUTHORIZATION, "LocalSubjectAccessReview", True),
    "selfsubjectrulesreviews": (AUTHORIZATION, "SelfSubjectRulesReview", False),
    "selfsubjectreviews": (AUTHENTICATION, "SelfSubjectReview", False),
    "tokenreviews": (AUTHENTICATION, "TokenReview", False),
}


def _answer(kind: str, group: str, body: Obj, status: Obj) -> Obj:
    metadata = dict(body.get("metadata") or {})
    metadata.setdefault("creationTimestamp", None)
    answer: Obj = {"kind": kind, "apiVersion": f"{group}/v1", "metadata": metadata}
    if "spec" in body or kind != "SelfSubjectReview":
        answer["spec"] = body.get("spec") or {}
    answer["status"] = status
    return answer


def _invalid(kind: str, group: str, field: str, message: str) -> InvalidError:
    return InvalidError(
        f'{kind}.{group} "" is invalid: {field}: {message}',
        group=group,
        kind=kind,
        causes=(Cause("FieldValueInvalid", message, field),),
    )


def _attributes(kind: str, user: UserInfo, spec: Obj) -> Attributes:
    resource: Obj = spec.get("resourceAttributes") or {}
    non_resource: Obj = spec.get("nonResourceAttributes") or {}
    if bool(resource) == bool(non_resource):
        raise _invalid(
            kind,
            AUTHORIZATION,
            "spec.resourceAttributes",
            'Invalid value: "null": exactly one of nonResourceAttributes or'
            " resourceAttributes must be specified",
        )
    if non_resource:
        return Attributes(
            user,
            str(non_resource.get("verb", "")),
            resource_request=False,
            path=str(non_resource.get("path", "")),
        )
    return Attributes(
        user,
        str(resource.get("verb", "")),
        namespace=str(resource.get("namespace", "")),
        api_group=str(resource.get("group", "")),
        api_version=str(resource.get("version", "")),
        resource=str(resource.get("resource", "")),
        subresource=str(resource.get("subresource", "")),
        name=str(resource.get("name", "")),
    )


def _decide(policy: Policy, attributes: Attributes) -> Obj:
    decision = policy.authorize(attributes)
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _subject(spec: Obj) -> UserInfo:
    """The user a SubjectAccessReview asks about."""
    name = str(spec.get("user", ""))
    groups = tuple(str(g) for g in spec.get("groups") or ())
    account = service_account_of(name)
    if account is not None and not groups:
        return service_account_user(*account, uid=str(spec.get("uid", "")))
    return UserInfo(name, groups, str(spec.get("uid", "")))


def _user_info(user: UserInfo) -> Obj:
    info: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return info


def review(
    plural: str,
    body: Any,
    *,
    user: UserInfo,
    policy: Policy,
    namespace: str = "",
    token_user: TokenUser | None = None,
) -> Obj:
    """Answer a review; ``token_user`` serves TokenReview."""
    group, kind, _ = KINDS[plural]
    if not isinstance(body, dict):
        raise BadRequestError(f"the request body must be a {kind} object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise BadRequestError("spec must be an object")
    if plural == "selfsubjectaccessreviews":
        return _answer(kind, group, body, _decide(policy, _attributes(kind, user, spec)))
    if plural == "localsubjectaccessreviews":
        attributes = _attributes(kind, _subject(spec), spec)
        if attributes.namespace != namespace:
            raise _invalid(
                kind,
                group,
                "spec.resourceAttributes.namespace",
                f'Invalid value: "{attributes.namespace}": must match metadata.namespace',
            )
        return _answer(kind, group, body, _decide(policy, attributes))
    if plural == "subjectaccessreviews":
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(
                kind,
                group,
                "spec.user",
                'Invalid value: "": at least one of user or group must be specified',
            )
        return _answer(kind, group, body, _decide(policy, _attributes(kind, _subject(spec), spec)))
    if plural == "selfsubjectrulesreviews":
        rules, errors = policy.rules_for(user, str(spec.get("namespace", "")))
        status: Obj = {
            "resourceRules": [r.as_dict() for r in rules if not r.non_resource_urls],
            "nonResourceRules": [r.as_dict() for r in rules if r.non_resource_urls],
            "incomplete": bool(errors),
        }
        if errors:
            status["evaluationError"] = ", ".join(errors)
        return _answer(kind, group, body, status)
    if plural == "selfsubjectreviews":
        return _answer(kind, group, body, {"userInfo": _user_info(user)})
    # tokenreviews
    audiences = tuple(str(a) for a in spec.get("audiences") or ())
    found = token_user(str(spec.get("token", "")), audiences) if token_user else None
    if found is None:
        return _answer(
            kind,
            group,
            body,
            {"authenticated": False, "user": {}, "error": "invalid bearer token"},
        )
    reviewed, accepted = found
    return _answer(
        kind,
        group,
        body,
        {"authenticated": True, "user": _user_info(reviewed), "audiences": list(accepted)},
    )


def impersonated(name: str, groups: tuple[str, ...], uid: str) -> UserInfo:
    """The user a request impersonates (``Impersonate-User``, ``-Group``, ``-Uid``): a
    service account gets its groups, anyone gets ``system:authenticated``."""
    account = service_account_of(name)
    base = service_account_user(*account).groups if account is not None else ()
    merged = tuple(dict.fromkeys((*groups, *base, AUTHENTICATED)))
    return UserInfo(name, merged, uid)

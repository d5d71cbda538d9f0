"""The local API's authorization and authentication, pure: RBAC decisions and their 403
messages (``rbac.py``), request attributes (``request_info.py``), service-account tokens
(``authn.py``), TokenRequest (``service_accounts.py``), the reviews (``access_reviews.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotta.dev.kubeapi.access_reviews import impersonated, review
from flotta.dev.kubeapi.authn import (
    ADMIN,
    Authenticator,
    KeyFile,
    TokenKey,
    read_claims,
    token_claims,
)
from flotta.dev.kubeapi.errors import InvalidError
from flotta.dev.kubeapi.rbac import (
    Attributes,
    Policy,
    Rule,
    UserInfo,
    forbidden_message,
    service_account_of,
    service_account_user,
)
from flotta.dev.kubeapi.rbac_validation import validate
from flotta.dev.kubeapi.request_info import request_attributes
from flotta.dev.kubeapi.service_accounts import issue_token

GROUP = "management.project-flotta.io"
BRIDGE = service_account_user("flotta", "flotta-bridge")
OPERATOR = service_account_user("flotta", "flotta-operator")


def role(name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": metadata, "rules": rules}


def binding(
    name: str,
    kind: str,
    role_name: str,
    subjects: list[dict[str, str]],
    namespace: str = "",
) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
        "subjects": subjects,
    }


def sa(name: str, namespace: str | None = "flotta") -> dict[str, str]:
    subject = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        subject["namespace"] = namespace
    return subject


def ask(
    user: UserInfo,
    verb: str,
    resource: str,
    *,
    namespace: str = "",
    group: str = "",
    name: str = "",
    subresource: str = "",
) -> Attributes:
    return Attributes(
        user,
        verb,
        namespace=namespace,
        api_group=group,
        resource=resource,
        name=name,
        subresource=subresource,
    )


@pytest.fixture
def policy() -> Policy:
    """Shaped like deploy/kubernetes: a ClusterRole bound cluster-wide, a Role in flotta."""
    return Policy(
        roles=[
            role(
                "flotta-operator",
                [
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "resourceNames": ["flotta-operator"],
                        "verbs": ["get", "update"],
                    },
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "verbs": ["create"],
                    },
                ],
                "flotta",
            )
        ],
        cluster_roles=[
            role(
                "flotta-bridge",
                [
                    {
                        "apiGroups": [GROUP],
                        "resources": ["edgedevices"],
                        "verbs": ["list", "watch"],
                    },
                    {"apiGroups": [GROUP], "resources": ["edgedevices/status"], "verbs": ["patch"]},
                ],
            ),
            role("reader", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}]),
            role(
                "status-writer", [{"apiGroups": [GROUP], "resources": ["*/status"], "verbs": ["*"]}]
            ),
            role("version", [{"nonResourceURLs": ["/version", "/apis/*"], "verbs": ["get"]}]),
        ],
        role_bindings=[
            binding(
                "flotta-operator", "Role", "flotta-operator", [sa("flotta-operator")], "flotta"
            ),
            binding("readers", "ClusterRole", "reader", [sa("flotta-operator", None)], "fleet"),
            binding(
                "writers",
                "ClusterRole",
                "status-writer",
                [{"kind": "User", "name": "ann"}],
                "fleet",
            ),
        ],
        cluster_role_bindings=[
            binding("flotta-bridge", "ClusterRole", "flotta-bridge", [sa("flotta-bridge")]),
            binding(
                "version",
                "ClusterRole",
                "version",
                [{"kind": "Group", "name": "system:authenticated"}],
            ),
        ],
    )


def test_a_cluster_role_binding_grants_in_every_namespace_and_at_the_cluster_scope(
    policy: Policy,
) -> None:
    for namespace in ("fleet", "other", ""):
        decision = policy.authorize(
            ask(BRIDGE, "list", "edgedevices", group=GROUP, namespace=namespace)
        )
        assert decision.allowed, namespace
        assert decision.reason == (
            'RBAC: allowed by ClusterRoleBinding "flotta-bridge" of ClusterRole "flotta-bridge"'
            ' to ServiceAccount "flotta-bridge/flotta"'
        )


def test_a_subresource_is_its_own_resource(policy: Policy) -> None:
    status = ask(
        BRIDGE, "patch", "edgedevices", group=GROUP, namespace="f", name="d", subresource="status"
    )
    assert policy.authorize(status).allowed
    main = ask(BRIDGE, "patch", "edgedevices", group=GROUP, namespace="f", name="d")
    assert not policy.authorize(main).allowed
    assert not policy.authorize(
        ask(BRIDGE, "get", "edgedevices", group=GROUP, namespace="f", name="d")
    ).allowed


def test_wildcards_for_groups_resources_verbs_and_subresources(policy: Policy) -> None:
    operator = service_account_user("fleet", "flotta-operator")  # the "readers" subject
    assert policy.authorize(ask(operator, "get", "secrets", namespace="fleet", name="x")).allowed
    assert policy.authorize(
        ask(operator, "get", "edgedevices", group=GROUP, namespace="fleet")
    ).allowed
    assert not policy.authorize(ask(operator, "list", "secrets", namespace="fleet")).allowed
    ann = UserInfo("ann", ("system:authenticated",))
    for verb in ("get", "patch", "update"):
        allowed = ask(
            ann,
            verb,
            "edgeworkloads",
            group=GROUP,
            namespace="fleet",
            name="w",
            subresource="status",
        )
        assert policy.authorize(allowed).allowed
    assert not policy.authorize(
        ask(
            ann,
            "patch",
            "edgeworkloads",
            group=GROUP,
            namespace="fleet",
            name="w",
            subresource="scale",
        )
    ).allowed
    assert not policy.authorize(
        ask(
            ann,
            "patch",
            "leases",
            group="coordination.k8s.io",
            namespace="fleet",
            name="w",
            subresource="status",
        )
    ).allowed


def test_a_role_binding_grants_in_its_namespace_only(policy: Policy) -> None:
    create = ask(OPERATOR, "create", "leases", group="coordination.k8s.io", namespace="flotta")
    assert policy.authorize(create).allowed
    for namespace in ("fleet", ""):
        elsewhere = ask(
            OPERATOR, "create", "leases", group="coordination.k8s.io", namespace=namespace
        )
        assert not policy.authorize(elsewhere).allowed
    # a ClusterRole through a RoleBinding: its namespace only; the subject's namespace
    # defaults to the binding's
    readers = service_account_user("fleet", "flotta-operator")
    assert policy.authorize(ask(readers, "get", "secrets", namespace="fleet", name="a")).allowed
    assert not policy.authorize(ask(readers, "get", "secrets", namespace="other", name="a")).allowed


def test_resource_names_limit_named_requests_and_refuse_unnamed_ones(policy: Policy) -> None:
    def lease(verb: str, name: str = "") -> Attributes:
        return ask(
            OPERATOR, verb, "leases", group="coordination.k8s.io", namespace="flotta", name=name
        )

    assert policy.authorize(lease("get", "flotta-operator")).allowed
    assert policy.authorize(lease("update", "flotta-operator")).allowed
    assert not policy.authorize(lease("get", "someone-else")).allowed
    assert not policy.authorize(
        lease("list")
    ).allowed  # no name: a resourceNames rule never matches
    assert not policy.authorize(lease("watch")).allowed


def test_non_resource_urls_and_groups(policy: Policy) -> None:
    someone = UserInfo("bob", ("system:authenticated",))

    def path(p: str) -> Attributes:
        return Attributes(someone, "get", resource_request=False, path=p)

    assert policy.authorize(path("/version")).allowed
    assert policy.authorize(path("/apis/management.project-flotta.io/v1alpha1")).allowed
    assert not policy.authorize(path("/api/v1")).allowed
    assert not policy.authorize(
        Attributes(UserInfo("bob"), "get", resource_request=False, path="/version")
    ).allowed


def test_masters_are_allowed_everything_without_rules() -> None:
    empty = Policy()
    assert empty.authorize(ask(ADMIN, "deletecollection", "secrets", namespace="x")).allowed
    assert not empty.authorize(ask(BRIDGE, "get", "secrets", namespace="x", name="y")).allowed


def test_a_missing_role_is_the_reason() -> None:
    policy = Policy(
        role_bindings=[binding("b", "Role", "gone", [sa("flotta-bridge")], "flotta")],
        cluster_role_bindings=[binding("c", "ClusterRole", "absent", [sa("flotta-bridge")])],
    )
    decision = policy.authorize(ask(BRIDGE, "get", "secrets", namespace="flotta", name="s"))
    assert not decision.allowed
    assert decision.reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "absent" not found,'
        ' role.rbac.authorization.k8s.io "gone" not found]'
    )


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            ask(
                OPERATOR, "get", "leases", group="coordination.k8s.io", namespace="flotta", name="x"
            ),
            'leases.coordination.k8s.io "x" is forbidden: User "system:serviceaccount:flotta:flotta-operator"'
            ' cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "flotta"',
        ),
        (
            ask(BRIDGE, "list", "secrets"),
            'secrets is forbidden: User "system:serviceaccount:flotta:flotta-bridge" cannot list'
            ' resource "secrets" in API group "" at the cluster scope',
        ),
        (
            ask(
                BRIDGE,
                "patch",
                "edgedevices",
                group=GROUP,
                namespace="f",
                name="d",
                subresource="status",
            ),
            'edgedevices.management.project-flotta.io "d" is forbidden: User'
            ' "system:serviceaccount:flotta:flotta-bridge" cannot patch resource "edgedevices/status"'
            ' in API group "management.project-flotta.io" in the namespace "f"',
        ),
        (
            Attributes(BRIDGE, "get", resource_request=False, path="/metrics"),
            'forbidden: User "system:serviceaccount:flotta:flotta-bridge" cannot get path "/metrics"',
        ),
    ],
)
def test_forbidden_messages_are_kube_apiservers(request_: Attributes, message: str) -> None:
    assert forbidden_message(request_) == message


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/secrets/s", {}, ("get", "a", "", "secrets", "s", "")),
        ("GET", "/api/v1/namespaces/a/secrets", {}, ("list", "a", "", "secrets", "", "")),
        ("GET", "/api/v1/secrets", {"watch": "true"}, ("watch", "", "", "secrets", "", "")),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/f/leases",
            {"watch": "1", "fieldSelector": "metadata.name=flotta-operator"},
            ("watch", "f", "coordination.k8s.io", "leases", "flotta-operator", ""),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/configmaps",
            {},
            ("deletecollection", "a", "", "configmaps", "", ""),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/configmaps/c",
            {},
            ("delete", "a", "", "configmaps", "c", ""),
        ),
        (
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/x/token",
            {},
            ("create", "a", "", "serviceaccounts", "x", "token"),
        ),
        (
            "PATCH",
            f"/apis/{GROUP}/v1alpha1/namespaces/f/edgedevices/d/status",
            {},
            ("patch", "f", GROUP, "edgedevices", "d", "status"),
        ),
        ("GET", "/api/v1/namespaces/n", {}, ("get", "n", "", "namespaces", "n", "")),
        (
            "PUT",
            "/api/v1/namespaces/n/status",
            {},
            ("update", "n", "", "namespaces", "n", "status"),
        ),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "", "namespaces", "", "")),
    ],
)
def test_request_attributes(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    found = request_attributes(BRIDGE, method, path, query)
    assert found.resource_request
    assert (
        found.verb,
        found.namespace,
        found.api_group,
        found.resource,
        found.name,
        found.subresource,
    ) == expected


@pytest.mark.parametrize(
    "path", ["/version", "/apis", "/api/v1", "/apis/rbac.authorization.k8s.io/v1", "/openapi/v3"]
)
def test_discovery_paths_are_non_resource_requests(path: str) -> None:
    found = request_attributes(BRIDGE, "GET", path, {})
    assert not found.resource_request
    assert (found.verb, found.path) == ("get", path)


# ---- tokens -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> TokenKey:
    return TokenKey.load_or_create(tmp_path_factory.mktemp("key") / "sa.key")


def test_the_key_is_made_with_the_first_token_then_kept(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "sa.key")
    assert keys.verifying() is None  # no token issued: no key made
    assert not (tmp_path / "sa.key").exists()
    token = keys.signing().sign({"a": 1})
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600
    reloaded = KeyFile(tmp_path / "sa.key").verifying()
    assert reloaded is not None
    assert reloaded.verify(token) == {"a": 1}


def _claims(**overrides: Any) -> dict[str, Any]:
    claims = token_claims(
        namespace="flotta",
        name="flotta-bridge",
        uid="u-1",
        audiences=("https://kubernetes.default.svc.cluster.local",),
        expiration_seconds=3600,
        now=1_000_000,
    )
    return {**claims, **overrides}


def test_tokens_authenticate_their_service_account_while_it_lives(key: TokenKey) -> None:
    accounts = {("flotta", "flotta-bridge"): "u-1"}
    now = [1_000_010.0]
    authn = Authenticator(
        "admin-secret", key, lambda ns, n: accounts.get((ns, n)), clock=lambda: now[0]
    )
    token = key.sign(_claims())
    assert authn.authenticate(f"Bearer {token}") == service_account_user(
        "flotta", "flotta-bridge", "u-1"
    )
    assert authn.authenticate(f"bearer {token}") is not None  # the Python client's spelling
    assert authn.authenticate("Bearer admin-secret") is ADMIN
    assert authn.authenticate("Bearer nonsense") is None
    assert authn.authenticate("") is None
    accounts[("flotta", "flotta-bridge")] = "u-2"  # deleted and created again
    assert authn.authenticate(f"Bearer {token}") is None
    accounts[("flotta", "flotta-bridge")] = "u-1"
    now[0] = 1_003_600.0  # expired
    assert authn.authenticate(f"Bearer {token}") is None


def test_a_tampered_or_foreign_token_is_refused(key: TokenKey, tmp_path: Path) -> None:
    authn = Authenticator("x", key, lambda ns, n: "u-1", clock=lambda: 1_000_010.0)
    token = key.sign(_claims())
    header, _, signature = token.split(".")
    forged = key.sign(_claims(sub="system:serviceaccount:flotta:flotta-operator"))
    assert authn.authenticate(f"Bearer {header}.{forged.split('.')[1]}.{signature}") is None
    other = TokenKey.load_or_create(tmp_path / "other.key")
    assert authn.authenticate(f"Bearer {other.sign(_claims())}") is None
    assert authn.authenticate(f"Bearer {key.sign(_claims(aud=['vault']))}") is None
    assert authn.authenticate(f"Bearer {key.sign(_claims(iss='elsewhere'))}") is None


def test_token_claims_are_a_bound_service_account_tokens() -> None:
    claims = _claims()
    assert claims["sub"] == "system:serviceaccount:flotta:flotta-bridge"
    assert claims["kubernetes.io"] == {
        "namespace": "flotta",
        "serviceaccount": {"name": "flotta-bridge", "uid": "u-1"},
    }
    assert claims["exp"] - claims["iat"] == 3600
    token = read_claims(claims)
    assert token is not None
    assert token.valid_at(1_000_000)
    assert not token.valid_at(1_003_600)


def test_token_request_defaults_and_limits(key: TokenKey) -> None:
    account = {"metadata": {"name": "flotta-bridge", "namespace": "flotta", "uid": "u-1"}}
    answer = issue_token(None, account, key, now=1_000_000)
    assert answer["kind"] == "TokenRequest"
    assert answer["spec"]["expirationSeconds"] == 3600
    assert answer["status"]["expirationTimestamp"] == "1970-01-12T14:46:40Z"
    claims = key.verify(answer["status"]["token"])
    assert claims is not None
    assert claims["exp"] == 1_003_600
    with pytest.raises(InvalidError, match="may not specify a duration less than 10 minutes"):
        issue_token({"spec": {"expirationSeconds": 60}}, account, key, now=0)
    custom = issue_token({"spec": {"audiences": ["vault"]}}, account, key, now=0)
    assert custom["spec"]["audiences"] == ["vault"]


# ---- validation, reviews, impersonation -------------------------------------------------------


def test_role_and_binding_validation() -> None:
    assert (
        validate("Role", role("r", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]))
        == []
    )
    causes = validate(
        "Role", role("r", [{"apiGroups": [""]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}])
    )
    assert [c.field for c in causes] == [
        "rules[0].verbs",
        "rules[0].resources",
        "rules[1].nonResourceURLs",
    ]
    assert validate("ClusterRole", role("r", [{"verbs": ["get"], "nonResourceURLs": ["/x"]}])) == []
    good = binding("b", "ClusterRole", "x", [sa("a")])
    assert validate("ClusterRoleBinding", good) == []
    no_namespace = binding("b", "ClusterRole", "x", [sa("a", None)])
    assert [c.field for c in validate("ClusterRoleBinding", no_namespace)] == [
        "subjects[0].namespace"
    ]
    assert validate("RoleBinding", binding("b", "Role", "x", [sa("a", None)], "n")) == []
    assert [c.field for c in validate("ClusterRoleBinding", binding("b", "Role", "x", []))] == [
        "roleRef.kind"
    ]
    changed = validate(
        "RoleBinding", binding("b", "Role", "y", [], "n"), old=binding("b", "Role", "x", [], "n")
    )
    assert [c.message for c in changed] == [
        'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"y"}:'
        " cannot change roleRef"
    ]


def test_reviews(policy: Policy) -> None:
    attributes = {
        "verb": "patch",
        "group": GROUP,
        "resource": "edgedevices",
        "subresource": "status",
    }
    answer = review(
        "selfsubjectaccessreviews",
        {"spec": {"resourceAttributes": attributes}},
        user=BRIDGE,
        policy=policy,
    )
    assert answer["status"]["allowed"] is True
    assert answer["status"]["reason"].startswith("RBAC: allowed by ClusterRoleBinding")
    about = review(
        "subjectaccessreviews",
        {
            "spec": {
                "user": "system:serviceaccount:flotta:flotta-bridge",
                "resourceAttributes": {**attributes, "subresource": ""},
            }
        },
        user=ADMIN,
        policy=policy,
    )
    assert about["status"] == {"allowed": False}
    rules = review(
        "selfsubjectrulesreviews", {"spec": {"namespace": "flotta"}}, user=OPERATOR, policy=policy
    )
    assert {
        "verbs": ["create"],
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
    } in rules["status"]["resourceRules"]
    assert rules["status"]["nonResourceRules"] == [
        {"verbs": ["get"], "nonResourceURLs": ["/version", "/apis/*"]}
    ]
    who = review("selfsubjectreviews", {}, user=BRIDGE, policy=policy)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:flotta:flotta-bridge"
    with pytest.raises(InvalidError, match="exactly one of"):
        review("selfsubjectaccessreviews", {"spec": {}}, user=BRIDGE, policy=policy)


def test_impersonated_users_get_their_groups() -> None:
    assert impersonated("system:serviceaccount:flotta:flotta-bridge", (), "") == BRIDGE
    assert impersonated("bob", ("devs",), "").groups == ("devs", "system:authenticated")
    assert service_account_of("system:serviceaccount:a:b") == ("a", "b")
    assert service_account_of("system:serviceaccount:a") is None


def test_rule_as_dict_round_trips() -> None:
    raw = {"verbs": ["get"], "apiGroups": [""], "resources": ["leases"], "resourceNames": ["x"]}
    assert Rule.parse(raw).as_dict() == raw

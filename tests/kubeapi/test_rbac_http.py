"""Contract: ServiceAccount tokens and RBAC over HTTP, with the official Python client and
kubectl, against the local API or (``--real-cluster``) a real one: a token is its account's
user, a Role grants what it lists in its namespace and nothing else, a denied request
answers 403 with kube-apiserver's Status, ``kubectl auth can-i`` and ``whoami`` agree. The
tests at the end are the local API's own (restart, audit log, bootstrap roles, tables)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kube import KubeEndpoint

RBAC = "rbac.authorization.k8s.io"


# The client's API classes, untyped: the tests pass plain dicts and read optional fields.
def core_api(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def rbac_api(api: client.ApiClient) -> Any:
    return client.RbacAuthorizationV1Api(api)


def authn_api(api: client.ApiClient) -> Any:
    return client.AuthenticationV1Api(api)


def make_service_account(core: Any, namespace: str, name: str) -> str:
    """Create a ServiceAccount and a TokenRequest token for it."""
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    answer = core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    return str(answer.status.token)


def grant(
    admin: client.ApiClient,
    namespace: str,
    name: str,
    rules: list[dict[str, Any]],
    subject: dict[str, str],
) -> None:
    """A Role with ``rules`` and a RoleBinding of it to ``subject``, both called ``name``."""
    rbac = rbac_api(admin)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
            "subjects": [subject],
        },
    )


def token_kubeconfig(kube: KubeEndpoint, token: str, path: Path) -> Path:
    """A kubeconfig with the endpoint's cluster and only the token as credentials."""
    document = yaml.safe_load(kube.kubeconfig.read_text())
    context = next(c for c in document["contexts"] if c["name"] == kube.context)["context"]
    cluster = next(c for c in document["clusters"] if c["name"] == context["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


@contextmanager
def token_client(kube: KubeEndpoint, token: str, tmp_path: Path) -> Iterator[client.ApiClient]:
    path = token_kubeconfig(kube, token, tmp_path / f"sa-{uuid.uuid4().hex[:6]}.kubeconfig")
    api = config.new_client_from_config(config_file=str(path))
    try:
        yield api
    finally:
        api.close()


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "{}")
    return body


@pytest.fixture
def admin(kube: KubeEndpoint) -> client.ApiClient:
    return kube.api_client()


@pytest.fixture
def reader(kube: KubeEndpoint, kube_namespace: str, admin: client.ApiClient) -> str:
    """A ServiceAccount with a Role: read ConfigMaps, update the one named "allowed"."""
    core = core_api(admin)
    token = make_service_account(core, kube_namespace, "reader")
    grant(
        admin,
        kube_namespace,
        "reader",
        [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["allowed"],
                "verbs": ["update", "patch"],
            },
        ],
        {"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace},
    )
    for name in ("allowed", "other"):
        core.create_namespaced_config_map(
            kube_namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "1"}),
        )
    wait_until_allowed(kube, token, namespace=kube_namespace)
    return token


def wait_until_allowed(kube: KubeEndpoint, token: str, *, namespace: str) -> None:
    """A real cluster's authorizer sees a new binding shortly after it is written."""
    if kube.local:
        return
    import tempfile

    with tempfile.TemporaryDirectory() as scratch, token_client(kube, token, Path(scratch)) as api:
        deadline = time.monotonic() + 10
        while True:
            try:
                core_api(api).list_namespaced_config_map(namespace)
                return
            except ApiException as error:
                if error.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def test_a_token_authenticates_its_service_account(
    kube: KubeEndpoint, kube_namespace: str, reader: str, tmp_path: Path
) -> None:
    with token_client(kube, reader, tmp_path) as api:
        review = authn_api(api).create_self_subject_review(client.V1SelfSubjectReview())
    user = review.status.user_info
    assert user.username == f"system:serviceaccount:{kube_namespace}:reader"
    assert set(user.groups) >= {
        "system:serviceaccounts",
        f"system:serviceaccounts:{kube_namespace}",
        "system:authenticated",
    }
    claims = json.loads(base64.urlsafe_b64decode(reader.split(".")[1] + "=="))
    assert claims["sub"] == user.username
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "reader"


def test_a_role_grants_its_verbs_and_names_in_its_namespace(
    kube: KubeEndpoint, kube_namespace: str, reader: str, tmp_path: Path
) -> None:
    user = f"system:serviceaccount:{kube_namespace}:reader"
    with token_client(kube, reader, tmp_path) as api:
        core = core_api(api)
        names = {cm.metadata.name for cm in core.list_namespaced_config_map(kube_namespace).items}
        assert {"allowed", "other"} <= names
        assert core.read_namespaced_config_map("other", kube_namespace).data == {"k": "1"}
        core.patch_namespaced_config_map("allowed", kube_namespace, {"data": {"k": "2"}})

        with pytest.raises(ApiException) as denied:
            core.patch_namespaced_config_map("other", kube_namespace, {"data": {"k": "2"}})
        assert denied.value.status == 403
        assert status_of(denied.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'configmaps "other" is forbidden: User "{user}" cannot patch resource'
            f' "configmaps" in API group "" in the namespace "{kube_namespace}"',
            "reason": "Forbidden",
            "details": {"name": "other", "kind": "configmaps"},
            "code": 403,
        }
        refusals = {
            "create": lambda: core.create_namespaced_config_map(
                kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="new"))
            ),
            "delete": lambda: core.delete_namespaced_config_map("allowed", kube_namespace),
            "deletecollection": lambda: core.delete_collection_namespaced_config_map(
                kube_namespace
            ),
            "list secrets": lambda: core.list_namespaced_secret(kube_namespace),
            "other namespace": lambda: core.list_namespaced_config_map("default"),
            "cluster scope": lambda: core.list_config_map_for_all_namespaces(),
        }
        messages = {}
        for what, call in refusals.items():
            with pytest.raises(ApiException) as refused:
                call()
            assert refused.value.status == 403, what
            messages[what] = status_of(refused.value)["message"]
    prefix = f'is forbidden: User "{user}" cannot'
    here = f'in API group "" in the namespace "{kube_namespace}"'
    assert messages == {
        "create": f'configmaps {prefix} create resource "configmaps" {here}',
        "delete": f'configmaps "allowed" {prefix} delete resource "configmaps" {here}',
        "deletecollection": f'configmaps {prefix} deletecollection resource "configmaps" {here}',
        "list secrets": f'secrets {prefix} list resource "secrets" {here}',
        "other namespace": f'configmaps {prefix} list resource "configmaps" in API group ""'
        ' in the namespace "default"',
        "cluster scope": f'configmaps {prefix} list resource "configmaps" in API group ""'
        " at the cluster scope",
    }


def test_a_named_watch_is_allowed_by_resource_names(
    kube: KubeEndpoint, kube_namespace: str, admin: client.ApiClient, tmp_path: Path
) -> None:
    """``fieldSelector=metadata.name=X`` makes a list or watch a request for X, so a rule
    with resourceNames allows it (leader-election clients watch their Lease so)."""
    core = core_api(admin)
    token = make_service_account(core, kube_namespace, "named")
    grant(
        admin,
        kube_namespace,
        "named",
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["mine"],
                "verbs": ["list", "watch"],
            }
        ],
        {"kind": "ServiceAccount", "name": "named"},  # in the binding's namespace
    )
    core.create_namespaced_config_map(
        kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="mine"))
    )
    with token_client(kube, token, tmp_path) as api:
        mine = core_api(api)
        deadline = time.monotonic() + 10
        while True:
            try:
                listed = mine.list_namespaced_config_map(
                    kube_namespace, field_selector="metadata.name=mine"
                )
                break
            except ApiException as error:
                if error.status != 403 or kube.local or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert [cm.metadata.name for cm in listed.items] == ["mine"]
        stream = watch.Watch().stream(
            mine.list_namespaced_config_map,
            kube_namespace,
            field_selector="metadata.name=mine",
            timeout_seconds=2,
        )
        try:
            first = next(stream)
        finally:
            stream.close()  # the watch's connection, closed now rather than at a later GC
        assert first["object"].metadata.name == "mine"
        with pytest.raises(ApiException) as refused:
            mine.list_namespaced_config_map(kube_namespace)
        assert refused.value.status == 403


def test_kubectl_create_token_auth_can_i_and_whoami(
    kube: KubeEndpoint, kube_namespace: str, reader: str, tmp_path: Path
) -> None:
    token = kube.kubectl("create", "token", "reader", "-n", kube_namespace, "--duration=15m").stdout
    path = token_kubeconfig(kube, token.strip(), tmp_path / "reader.kubeconfig")

    def as_reader(*args: str, check: bool = True) -> Any:
        return kube.kubectl(f"--kubeconfig={path}", "--context=sa", *args, check=check)

    whoami = as_reader("auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{kube_namespace}:reader"
    )
    assert (
        as_reader("auth", "can-i", "list", "configmaps", "-n", kube_namespace).stdout.strip()
        == "yes"
    )
    refused = as_reader("auth", "can-i", "create", "configmaps", "-n", kube_namespace, check=False)
    assert (refused.returncode, refused.stdout.strip()) == (1, "no")
    assert (
        as_reader(
            "auth", "can-i", "patch", "configmaps/allowed", "-n", kube_namespace
        ).stdout.strip()
        == "yes"
    )
    account = f"--as=system:serviceaccount:{kube_namespace}:reader"
    impersonated = kube.kubectl("auth", "can-i", "get", "configmaps", account, "-n", kube_namespace)
    assert impersonated.stdout.strip() == "yes"
    listing = as_reader("auth", "can-i", "--list", "-n", kube_namespace).stdout
    assert any(line.split()[:1] == ["configmaps"] for line in listing.splitlines())
    denied = as_reader("get", "secrets", "-n", kube_namespace, check=False)
    assert denied.returncode == 1
    assert (
        f'Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:'
        f'{kube_namespace}:reader" cannot list resource "secrets" in API group "" in the'
        f' namespace "{kube_namespace}"'
    ) in denied.stderr


def test_a_deleted_service_accounts_token_is_refused(
    kube: KubeEndpoint, kube_namespace: str, reader: str, admin: client.ApiClient, tmp_path: Path
) -> None:
    core_api(admin).delete_namespaced_service_account("reader", kube_namespace)
    with token_client(kube, reader, tmp_path) as api:
        deadline = time.monotonic() + 10
        while True:
            try:
                core_api(api).list_namespaced_config_map(kube_namespace)
            except ApiException as error:
                status = error.status
                break
            assert not kube.local, "a deleted account's token still works"
            assert time.monotonic() < deadline, "a deleted account's token still works"
            time.sleep(0.2)
    assert status == 401


def test_an_apply_that_creates_also_needs_create(
    kube: KubeEndpoint, kube_namespace: str, reader: str, admin: client.ApiClient, tmp_path: Path
) -> None:
    """Server-side apply is a patch; when it creates the object, create is checked too."""
    grant(
        admin,
        kube_namespace,
        "patcher",
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}],
        {"kind": "ServiceAccount", "name": "reader"},
    )
    path = token_kubeconfig(kube, reader, tmp_path / "reader.kubeconfig")

    def apply(name: str) -> Any:
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        return kube.kubectl(
            f"--kubeconfig={path}",
            "--context=sa",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-n",
            kube_namespace,
            "-f",
            "-",
            stdin=yaml.safe_dump({**manifest, "data": {"k": "9"}}),
            check=False,
        )

    deadline = time.monotonic() + 10
    while (applied := apply("allowed")).returncode != 0:
        assert not kube.local, applied.stderr
        assert time.monotonic() < deadline, applied.stderr
        time.sleep(0.2)
    assert "serverside-applied" in applied.stdout
    refused = apply("fresh")
    assert refused.returncode == 1
    assert (
        f'configmaps "fresh" is forbidden: User "system:serviceaccount:{kube_namespace}:reader"'
        f' cannot create resource "configmaps" in API group "" in the namespace "{kube_namespace}"'
    ) in refused.stderr


def test_token_request_refuses_short_durations(
    kube: KubeEndpoint, kube_namespace: str, admin: client.ApiClient
) -> None:
    core = core_api(admin)
    core.create_namespaced_service_account(
        kube_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="brief"))
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_service_account_token(
            "brief",
            kube_namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=60)
            ),
        )
    assert refused.value.status == 422
    assert "may not specify a duration less than 10 minutes" in status_of(refused.value)["message"]


# ---- the local API's own ----------------------------------------------------------------------


def test_tokens_survive_a_restart_and_the_admin_keeps_full_access(
    kube_api_factory: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = kube_api_factory(state_dir=state)
    core = core_api(first.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    token = make_service_account(core, "team", "robot")
    kube_api_factory.stop(first)
    second = kube_api_factory(state_dir=state)
    with token_client(second, token, tmp_path) as api:
        with pytest.raises(ApiException) as refused:
            core_api(api).list_namespaced_secret("team")
        assert refused.value.status == 403  # known, and not allowed
    admin = core_api(second.api_client())
    assert admin.list_secret_for_all_namespaces().items == []
    assert admin.read_namespace("team").metadata.name == "team"


def test_the_audit_log_records_user_verb_object_and_decision(
    kube_api_factory: Any, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.log"
    kube = kube_api_factory(audit_log=audit)
    core = core_api(kube.api_client())
    token = make_service_account(core, "default", "robot")
    with token_client(kube, token, tmp_path) as api, pytest.raises(ApiException):
        core_api(api).read_namespaced_secret("s", "default")
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    last = events[-1]
    assert last["user"]["username"] == "system:serviceaccount:default:robot"
    assert (last["verb"], last["objectRef"], last["responseStatus"]["code"]) == (
        "get",
        {"resource": "secrets", "namespace": "default", "name": "s", "apiVersion": "v1"},
        403,
    )
    assert last["annotations"]["authorization.k8s.io/decision"] == "forbid"
    token_request = next(e for e in events if e["objectRef"].get("subresource") == "token")
    assert token_request["verb"] == "create"
    assert token_request["user"]["groups"] == ["system:masters", "system:authenticated"]


def test_bootstrap_roles_and_binding_tables(kube_api: KubeEndpoint) -> None:
    roles = kube_api.kubectl("get", "clusterroles", "-o", "name").stdout.split()
    assert {
        "clusterrole.rbac.authorization.k8s.io/cluster-admin",
        "clusterrole.rbac.authorization.k8s.io/system:discovery",
        "clusterrole.rbac.authorization.k8s.io/system:basic-user",
    } <= set(roles)
    kube_api.kubectl("create", "serviceaccount", "robot", "-n", "default")
    kube_api.kubectl(
        "create",
        "clusterrolebinding",
        "robot-view",
        "--clusterrole=system:discovery",
        "--serviceaccount=default:robot",
        "--group=devs",
    )
    table = kube_api.kubectl(
        "get", "clusterrolebinding", "robot-view", "-o", "wide"
    ).stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    cells = table[1].split()
    assert (cells[0], cells[1], cells[-2], cells[-1]) == (
        "robot-view",
        "ClusterRole/system:discovery",
        "devs",
        "default/robot",
    )
    accounts = kube_api.kubectl("get", "sa", "-n", "default").stdout.splitlines()
    assert accounts[0].split() == ["NAME", "SECRETS", "AGE"]
    changed = kube_api.kubectl(
        "patch",
        "clusterrolebinding",
        "robot-view",
        "--type=merge",
        "-p",
        '{"roleRef":{"name":"cluster-admin"}}',
        check=False,
    )
    assert "cannot change roleRef" in changed.stderr

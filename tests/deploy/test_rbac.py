"""RBAC in deploy/kubernetes is exactly what the code needs.

The tables below say, for every Kubernetes API method the operator and the bridge refer to,
which permissions it takes. The code is scanned for those methods (and for the resources
the operator's ``KubeWriter`` and watchers are called with), so a new call that is not in
the tables fails here; then each permission must be granted to the component's
ServiceAccount, and every rule granted must be needed by one of them.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client

from flotta.schemas.crd.common import GROUP
from tests.deploy.manifests import NAMESPACE, ROOT, Obj, objects

CLUSTER = "*"  # any namespace
LEASE = "flotta-operator"
CRL_SECRET = "flotta-crl"
# Each component's modules, and the shared ones that make calls on its behalf.
SOURCES = {
    "operator": (ROOT / "operator" / "flotta" / "operator",),
    "bridge": (
        ROOT / "bridge" / "flotta" / "bridge",
        ROOT / "schemas" / "flotta" / "kube_watch.py",  # the bridge's EdgeDevice watch
    ),
}
SERVICE_ACCOUNTS = {"operator": "flotta-operator", "bridge": "flotta-bridge"}


@dataclass(frozen=True)
class Need:
    group: str
    resource: str
    verb: str
    namespace: str = CLUSTER
    name: str | None = None


def watch(group: str, resource: str) -> list[Need]:
    """A list that is then watched (the watchers and the bridge's device watch)."""
    return [Need(group, resource, "list"), Need(group, resource, "watch")]


# (component, module, client method) -> what it needs; None: derived from the call sites
# below (the resources the operator's own wrappers are called with).
CALLS: dict[tuple[str, str, str], list[Need] | None] = {
    ("operator", "leader", "create_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "create", NAMESPACE)
    ],
    ("operator", "leader", "read_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "get", NAMESPACE, LEASE)
    ],
    ("operator", "leader", "replace_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "update", NAMESPACE, LEASE)
    ],
    ("operator", "crl_secret", "read_namespaced_secret"): [
        Need("", "secrets", "get", NAMESPACE, CRL_SECRET)
    ],
    ("operator", "crl_secret", "patch_namespaced_secret"): [
        Need("", "secrets", "patch", NAMESPACE, CRL_SECRET)
    ],
    ("operator", "watching", "list_secret_for_all_namespaces"): watch("", "secrets"),
    ("operator", "watching", "list_config_map_for_all_namespaces"): watch("", "configmaps"),
    ("operator", "watching", "list_cluster_custom_object"): None,  # WATCHED
    ("operator", "patching", "create_namespaced_event"): [Need("", "events", "create")],
    ("operator", "patching", "list_controller_revision_for_all_namespaces"): [
        Need("apps", "controllerrevisions", "list")
    ],
    ("operator", "patching", "create_namespaced_controller_revision"): [
        Need("apps", "controllerrevisions", "create")
    ],
    ("operator", "patching", "patch_namespaced_controller_revision"): [
        Need("apps", "controllerrevisions", "patch")
    ],
    ("operator", "patching", "delete_namespaced_controller_revision"): [
        Need("apps", "controllerrevisions", "delete")
    ],
    ("operator", "patching", "create_namespaced_custom_object"): None,  # WRITES "create"
    ("operator", "patching", "get_namespaced_custom_object"): None,  # after a create conflict
    ("operator", "patching", "patch_namespaced_custom_object"): None,  # WRITES "patch"
    ("operator", "patching", "patch_namespaced_custom_object_status"): None,  # "patch_status"
    ("bridge", "kube_watch", "list_cluster_custom_object"): watch(GROUP, "edgedevices"),
    ("bridge", "kube", "patch_namespaced_custom_object_status"): [
        Need(GROUP, "edgedevices/status", "patch")
    ],
    ("bridge", "kube", "create_namespaced_event"): [Need("", "events", "create")],
    ("bridge", "presence", "read_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "get", NAMESPACE)
    ],
    ("bridge", "presence", "create_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "create", NAMESPACE)
    ],
    ("bridge", "presence", "replace_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "update", NAMESPACE)
    ],
    ("operator", "bridge_watch", "list_namespaced_lease"): [
        Need("coordination.k8s.io", "leases", "list", NAMESPACE)
    ],
}

# The operator's KubeWriter (patching.py), as called from its loops: (method, plural) ->
# the namespace the objects are in.
WRITES: dict[tuple[str, str], str] = {
    ("create", "edgedevicesignedrequests"): NAMESPACE,  # --enrolment-namespace
    ("create", "edgedevices"): CLUSTER,  # the namespace a request targets
    ("patch", "edgedevices"): CLUSTER,
    ("patch_status", "edgedevices"): CLUSTER,
    ("patch_status", "edgedevicesets"): CLUSTER,
    ("patch_status", "edgeworkloads"): CLUSTER,
    ("patch_status", "edgedevicesignedrequests"): CLUSTER,
}

# The Flotta kinds the operator watches in every namespace (app.py, flotta_kind).
WATCHED = {"edgedevices", "edgedevicesets", "edgeworkloads", "edgedevicesignedrequests"}
# The core kinds it watches (app.py, core_kind), each with its list method in CALLS.
CORE_WATCHED = {"Secret", "ConfigMap"}


def needs(component: str) -> set[Need]:
    result: set[Need] = set()
    for (owner, _, method), listed in CALLS.items():
        if owner != component:
            continue
        if listed is not None:
            result.update(listed)
        elif method == "list_cluster_custom_object":
            for plural in WATCHED:
                result.update(watch(GROUP, plural))
        else:
            for (call, plural), namespace in WRITES.items():
                if method == "patch_namespaced_custom_object_status" and call == "patch_status":
                    result.add(Need(GROUP, f"{plural}/status", "patch", namespace))
                elif method == "patch_namespaced_custom_object" and call == "patch":
                    result.add(Need(GROUP, plural, "patch", namespace))
                elif call == "create" and method == "create_namespaced_custom_object":
                    result.add(Need(GROUP, plural, "create", namespace))
                elif call == "create" and method == "get_namespaced_custom_object":
                    result.add(Need(GROUP, plural, "get", namespace))
    return result


# ---- what the code refers to ---------------------------------------------------------------

API_VERB = re.compile(r"^(list|read|create|patch|replace|delete|get|watch|connect)_")


def client_methods() -> set[str]:
    """Every request method of the official client's API classes."""
    names: set[str] = set()
    for name, cls in inspect.getmembers(kubernetes.client, inspect.isclass):
        if name.endswith("Api") and cls.__module__.startswith("kubernetes.client.api."):
            names.update(m for m, _ in inspect.getmembers(cls, inspect.isfunction))
    return {n.removesuffix("_with_http_info") for n in names if API_VERB.match(n)}


def modules(component: str) -> Iterator[tuple[str, ast.Module]]:
    for source in SOURCES[component]:
        for path in sorted(source.glob("*.py")) if source.is_dir() else [source]:
            yield path.stem, ast.parse(path.read_text(), str(path))


def referenced_calls() -> set[tuple[str, str, str]]:
    methods = client_methods()
    found = set()
    for component in SOURCES:
        for module, tree in modules(component):
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute):
                    name = node.attr.removesuffix("_with_http_info")
                    if name in methods:
                        found.add((component, module, name))
    return found


def module_constants(tree: ast.Module) -> dict[str, str]:
    constants = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            constants[node.targets[0].id] = node.value.value
    return constants


def literal(node: ast.expr, constants: dict[str, str], where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    raise AssertionError(f"{where}: cannot tell the resource ({ast.unparse(node)}); use a literal")


def writer_calls() -> set[tuple[str, str]]:
    """(method, plural) of every ``<...>.kube.create|patch|patch_status(plural, ...)``."""
    found = set()
    for module, tree in modules("operator"):
        constants = module_constants(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("create", "patch", "patch_status")
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr in ("kube", "_kube")
            ):
                where = f"operator/{module}.py:{node.lineno}"
                found.add((node.func.attr, literal(node.args[0], constants, where)))
    return found


def watched_kinds() -> tuple[set[str], set[str]]:
    """The plurals of ``flotta_kind(api, KIND, PLURAL)`` and kinds of ``core_kind(api, KIND)``."""
    flotta, core = set(), set()
    for module, tree in modules("operator"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                where = f"operator/{module}.py:{node.lineno}"
                if node.func.id == "flotta_kind":
                    flotta.add(literal(node.args[2], {}, where))
                elif node.func.id == "core_kind":
                    core.add(literal(node.args[1], {}, where))
    return flotta, core


# ---- what the manifests grant --------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    namespace: str  # CLUSTER for a ClusterRole bound cluster-wide
    rule: Obj

    def allows(self, need: Need) -> bool:
        rule = self.rule
        if self.namespace != CLUSTER and self.namespace != need.namespace:
            return False
        names = rule.get("resourceNames") or []
        return (
            need.group in rule["apiGroups"]
            and need.resource in rule["resources"]
            and need.verb in rule["verbs"]
            and (not names or need.name in names)
        )


def grants(service_account: str) -> list[Grant]:
    roles = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects()
    }
    found = []
    for binding in objects():
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == service_account
            and s.get("namespace") == NAMESPACE
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_namespace = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_namespace, ref["name"])]
        for rule in role["rules"]:
            found.append(Grant(scope or CLUSTER, rule))
    return found


# ---- the tests -----------------------------------------------------------------------------


def test_every_api_call_in_the_code_is_in_the_table() -> None:
    found = referenced_calls()
    missing = sorted(found - CALLS.keys())
    assert not missing, (
        f"Kubernetes API calls without an RBAC entry in tests/deploy/test_rbac.py: {missing}; "
        "add them to CALLS and grant them in deploy/kubernetes/*-rbac.yaml"
    )
    stale = sorted(CALLS.keys() - found)
    assert not stale, f"CALLS names calls the code no longer makes: {stale}"


def test_writer_calls_and_watched_kinds_are_in_the_table() -> None:
    assert writer_calls() == WRITES.keys()
    flotta, core = watched_kinds()
    assert flotta == WATCHED
    assert core == CORE_WATCHED


def test_each_component_is_granted_what_its_calls_need() -> None:
    for component, account in SERVICE_ACCOUNTS.items():
        granted = grants(account)
        assert granted, f"{account} is bound to nothing"
        for need in sorted(needs(component), key=repr):
            assert any(g.allows(need) for g in granted), f"{account} may not {need}"


def test_no_rule_grants_more_than_the_calls_need() -> None:
    for component, account in SERVICE_ACCOUNTS.items():
        wanted = needs(component)
        for grant in grants(account):
            rule = grant.rule
            for value in (*rule["apiGroups"], *rule["resources"], *rule["verbs"]):
                assert value != "*", f"{account}: wildcard in {rule}"
            names = rule.get("resourceNames") or []
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        justified = [
                            n
                            for n in wanted
                            if (n.group, n.resource, n.verb) == (group, resource, verb)
                            and (grant.namespace == n.namespace or n.namespace == CLUSTER)
                            and (bool(names) == (n.name is not None))
                            and (not names or n.name in names)
                        ]
                        assert justified, (
                            f"{account}: {verb} {group or 'core'}/{resource} "
                            f"({'cluster-wide' if grant.namespace == CLUSTER else grant.namespace}"
                            f"{', ' + str(names) if names else ''}) is granted but no call needs it"
                        )
                        if grant.namespace == CLUSTER:
                            assert any(n.namespace == CLUSTER for n in justified), (
                                f"{account}: {verb} {resource} is granted cluster-wide, "
                                "needed in one namespace only"
                            )


def test_the_broker_has_no_api_access() -> None:
    assert not grants("flotta-broker")


def test_the_table_is_checked_against_the_real_client() -> None:
    methods = client_methods()
    for _, _, method in CALLS:
        assert method in methods, method
    assert Path(kubernetes.client.__file__).exists()

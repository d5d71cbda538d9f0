"""The ClusterRoles and ClusterRoleBindings a cluster starts with, for the parts this API
serves (kube-apiserver's bootstrap policy): ``cluster-admin`` for ``system:masters``,
discovery, the self reviews and the health paths for every authenticated user. Created when
missing, at every start."""

from __future__ import annotations

import json
from typing import Any

from flotta.dev.kubeapi.api import Api
from flotta.dev.kubeapi.rbac import GROUP

_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
_HEALTH_PATHS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": _BOOTSTRAP_LABELS, "annotations": _AUTOUPDATE},
        "rules": rules,
    }


def _group_binding(name: str, groups: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": _BOOTSTRAP_LABELS, "annotations": _AUTOUPDATE},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": group} for group in groups],
    }


# What kube-apiserver's bootstrap policy creates, for the parts this API serves.
BOOTSTRAP: tuple[dict[str, Any], ...] = (
    _cluster_role(
        "cluster-admin",
        [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    ),
    _group_binding("cluster-admin", ["system:masters"]),
    _cluster_role(
        "system:discovery",
        [
            {
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                "verbs": ["get"],
            }
        ],
    ),
    _group_binding("system:discovery", ["system:authenticated"]),
    _cluster_role(
        "system:basic-user",
        [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
                "verbs": ["create"],
            },
        ],
    ),
    _group_binding("system:basic-user", ["system:authenticated"]),
    _cluster_role(
        "system:public-info-viewer", [{"nonResourceURLs": _HEALTH_PATHS, "verbs": ["get"]}]
    ),
    _group_binding("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
)


def ensure_bootstrap(api: Api) -> None:
    """Create the bootstrap ClusterRoles and bindings that are missing."""
    for obj in BOOTSTRAP:
        plural = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
        resource = api.registry.lookup(GROUP, "v1", plural)
        assert resource is not None
        if api.storage.get(resource.key, "", obj["metadata"]["name"]) is None:
            api.create(resource, "", json.loads(json.dumps(obj)))

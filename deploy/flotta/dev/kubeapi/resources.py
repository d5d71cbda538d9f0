"""Resource types the server serves: the built-in kinds and those CRDs install."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flotta.dev.kubeapi import columns

_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_EVENT_FIELDS = _COMMON_FIELDS | frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""
    value: Callable[[dict[str, Any]], Any] | None = None  # a computed cell (no JSONPath)


@dataclass(frozen=True)
class Subresource:
    """A subresource other than status, for discovery (``serviceaccounts/token``)."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    schema: dict[str, Any] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    field_selectors: frozenset[str] = _COMMON_FIELDS
    versions: tuple[str, ...] = field(default=())
    verbs: tuple[str, ...] = ()  # the verbs discovery lists, when not all of them
    subresources: tuple[Subresource, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Storage key: one collection per group and resource, whatever the version."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """``edgedevices.management.project-flotta.io`` (or ``secrets`` for core)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def at_version(self, version: str) -> ResourceType:
        from dataclasses import replace

        return replace(self, version=version)


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")
_CREATED_AT = PrinterColumn("Created At", "date", "", value=columns.created_at)
_BINDING_COLUMNS = (
    PrinterColumn("Role", "string", "", value=columns.role_ref),
    _AGE,
    PrinterColumn("Users", "string", "", priority=1, value=columns.users),
    PrinterColumn("Groups", "string", "", priority=1, value=columns.groups),
    PrinterColumn("ServiceAccounts", "string", "", priority=1, value=columns.service_accounts),
)
_WORKLOAD_WIDE = (
    PrinterColumn("Containers", "string", "", priority=1, value=columns.containers),
    PrinterColumn("Images", "string", "", priority=1, value=columns.images),
)
RBAC_GROUP = "rbac.authorization.k8s.io"
_CREATE_ONLY = ("create",)

BUILTINS: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        singular="namespace",
        short_names=("ns",),
        status_subresource=True,
        printer_columns=(PrinterColumn("Status", "string", ".status.phase"), _AGE),
        field_selectors=_COMMON_FIELDS | {"status.phase"},
    ),
    ResourceType(
        "",
        "v1",
        "secrets",
        "Secret",
        namespaced=True,
        singular="secret",
        printer_columns=(PrinterColumn("Type", "string", ".type"), _AGE),
        field_selectors=_COMMON_FIELDS | {"type"},
    ),
    ResourceType(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        namespaced=True,
        singular="configmap",
        short_names=("cm",),
        printer_columns=(_AGE,),
    ),
    ResourceType(
        "",
        "v1",
        "events",
        "Event",
        namespaced=True,
        singular="event",
        short_names=("ev",),
        printer_columns=(
            PrinterColumn("Type", "string", ".type"),
            PrinterColumn("Reason", "string", ".reason"),
            PrinterColumn("Object", "string", ".involvedObject.name"),
            PrinterColumn("Message", "string", ".message"),
        ),
        field_selectors=_EVENT_FIELDS,
    ),
    ResourceType(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        namespaced=True,
        singular="lease",
        printer_columns=(PrinterColumn("Holder", "string", ".spec.holderIdentity"), _AGE),
    ),
    ResourceType(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        namespaced=True,
        singular="serviceaccount",
        short_names=("sa",),
        printer_columns=(
            PrinterColumn("Secrets", "integer", "", value=columns.secret_count),
            _AGE,
        ),
        subresources=(
            Subresource("token", "TokenRequest", _CREATE_ONLY, "authentication.k8s.io", "v1"),
        ),
    ),
    ResourceType(
        RBAC_GROUP,
        "v1",
        "roles",
        "Role",
        namespaced=True,
        singular="role",
        printer_columns=(_CREATED_AT,),
    ),
    ResourceType(
        RBAC_GROUP,
        "v1",
        "clusterroles",
        "ClusterRole",
        namespaced=False,
        singular="clusterrole",
        printer_columns=(_CREATED_AT,),
    ),
    ResourceType(
        RBAC_GROUP,
        "v1",
        "rolebindings",
        "RoleBinding",
        namespaced=True,
        singular="rolebinding",
        printer_columns=_BINDING_COLUMNS,
    ),
    ResourceType(
        RBAC_GROUP,
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        singular="clusterrolebinding",
        printer_columns=_BINDING_COLUMNS,
    ),
    # Reviews: answered, never stored (access_reviews.py).
    *(
        ResourceType(
            group,
            "v1",
            plural,
            kind,
            namespaced=plural.startswith("local"),
            singular=kind.lower(),
            verbs=_CREATE_ONLY,
        )
        for group, plural, kind in (
            ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
            ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
            ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview"),
            ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
            ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
            ("authentication.k8s.io", "tokenreviews", "TokenReview"),
        )
    ),
    # Workload kinds, stored as an API server alone stores them: no controller runs them
    # (so that kubectl apply -k deploy/kubernetes applies the whole install).
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        namespaced=True,
        singular="deployment",
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
        printer_columns=(
            PrinterColumn("Ready", "string", "", value=columns.ready_replicas),
            PrinterColumn("Up-to-date", "integer", ".status.updatedReplicas"),
            PrinterColumn("Available", "integer", ".status.availableReplicas"),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        namespaced=True,
        singular="statefulset",
        short_names=("sts",),
        categories=("all",),
        status_subresource=True,
        printer_columns=(
            PrinterColumn("Ready", "string", "", value=columns.ready_replicas),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
    ),
    ResourceType(
        "",
        "v1",
        "services",
        "Service",
        namespaced=True,
        singular="service",
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
        printer_columns=(
            PrinterColumn("Type", "string", ".spec.type"),
            PrinterColumn("Cluster-IP", "string", "", value=columns.cluster_ip),
            PrinterColumn("External-IP", "string", "", value=columns.external_ip),
            PrinterColumn("Port(s)", "string", "", value=columns.service_ports),
            _AGE,
        ),
    ),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        namespaced=True,
        singular="persistentvolumeclaim",
        short_names=("pvc",),
        status_subresource=True,
        printer_columns=(
            PrinterColumn("Status", "string", ".status.phase"),
            PrinterColumn("Volume", "string", ".spec.volumeName"),
            PrinterColumn("Capacity", "string", ".status.capacity.storage"),
            PrinterColumn("Access Modes", "string", "", value=columns.access_modes),
            PrinterColumn("StorageClass", "string", ".spec.storageClassName"),
            _AGE,
        ),
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        namespaced=True,
        singular="networkpolicy",
        short_names=("netpol",),
        printer_columns=(
            PrinterColumn("Pod-Selector", "string", "", value=columns.selector),
            _AGE,
        ),
    ),
    # Revision history (apps/v1), as DaemonSets keep it: the operator keeps the revisions of
    # a rollout (EdgeWorkload, EdgeDeviceSet) in them.
    ResourceType(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        namespaced=True,
        singular="controllerrevision",
        printer_columns=(
            PrinterColumn(
                "Controller", "string", ".metadata.ownerReferences[?(@.controller==true)].name"
            ),
            PrinterColumn("Revision", "integer", ".revision"),
            _AGE,
        ),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        singular="customresourcedefinition",
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status_subresource=True,
        printer_columns=(PrinterColumn("Created At", "date", ".metadata.creationTimestamp"),),
    ),
)

CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_KEY = "/namespaces"


class CrdError(ValueError):
    """A CustomResourceDefinition this server cannot serve."""


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        raise CrdError("spec is required")
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not (isinstance(group, str) and isinstance(plural, str) and isinstance(kind, str)):
        raise CrdError("spec.group, spec.names.plural and spec.names.kind are required")
    versions = [
        v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served", True)
    ]
    served = tuple(str(v.get("name")) for v in versions)
    result: list[ResourceType] = []
    for version in versions:
        columns = tuple(
            PrinterColumn(
                name=str(column.get("name", "")),
                type=str(column.get("type", "string")),
                json_path=str(column.get("jsonPath", "")),
                description=str(column.get("description", "")),
                priority=int(column.get("priority", 0)),
                format=str(column.get("format", "")),
            )
            for column in version.get("additionalPrinterColumns") or ()
        )
        result.append(
            ResourceType(
                group=group,
                version=str(version.get("name")),
                plural=plural,
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=str(names.get("singular") or kind.lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (version.get("subresources") or {}),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=columns or (_AGE,),
                versions=served,
            )
        )
    return result


class Registry:
    """Maps (group, version, plural) to the ResourceType that serves it."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        for resource_type in BUILTINS:
            self._add(resource_type)

    def _add(self, resource_type: ResourceType) -> None:
        self._types[(resource_type.group, resource_type.version, resource_type.plural)] = (
            resource_type
        )

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def install_crd(self, crd_name: str, crd: dict[str, Any]) -> None:
        self.remove_crd(crd_name)
        types = types_from_crd(crd)
        self._crd_types[crd_name] = types
        for resource_type in types:
            self._add(resource_type)

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        types = self._crd_types.pop(crd_name, [])
        for resource_type in types:
            self._types.pop(
                (resource_type.group, resource_type.version, resource_type.plural), None
            )
        return types

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name -> versions served, in a stable order ("" is the core group)."""
        result: dict[str, list[str]] = {}
        for group, version, _ in self._types:
            versions = result.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return result

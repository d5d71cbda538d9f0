"""How each Flotta kind is served: names, short names, printer columns, extra validation rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flotta.schemas.crd.common import Resource
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.signed_request import EdgeDeviceSignedRequest
from flotta.schemas.crd.workload import EdgeWorkload


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0

    def to_api(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


@dataclass(frozen=True)
class Rule:
    """A CEL rule (``x-kubernetes-validations``) at a path of the schema, as a list of
    property names from the root of the object schema (``items`` steps into arrays)."""

    path: tuple[str, ...]
    rule: str
    message: str


@dataclass(frozen=True)
class KindSpec:
    model: type[Resource]
    singular: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    required: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        return self.model.KIND

    @property
    def plural(self) -> str:
        return self.model.PLURAL


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")

KINDS: tuple[KindSpec, ...] = (
    KindSpec(
        model=EdgeDevice,
        singular="edgedevice",
        short_names=("ed", "edgedev"),
        columns=(
            PrinterColumn("Phase", "string", ".status.phase", "Online, Offline, Enrolled"),
            PrinterColumn(
                "Ready",
                "string",
                ".status.conditions[?(@.type=='Ready')].status",
                "online, desired version applied, workloads ready",
            ),
            PrinterColumn("Applied", "string", ".status.appliedVersion", "applied config version"),
            PrinterColumn("Last Seen", "date", ".status.lastSeenTime"),
            PrinterColumn(
                "Commit", "string", ".status.upgradeInformation.currentCommitID", priority=1
            ),
            AGE,
        ),
    ),
    KindSpec(
        model=EdgeDeviceSet,
        singular="edgedeviceset",
        short_names=("eds", "edgeset"),
        columns=(PrinterColumn("Members", "integer", ".status.members"), AGE),
    ),
    KindSpec(
        model=EdgeWorkload,
        singular="edgeworkload",
        short_names=("ew", "edgewl"),
        columns=(
            PrinterColumn("Device", "string", ".spec.device"),
            PrinterColumn("Targeted", "integer", ".status.targetedDevices"),
            PrinterColumn("Applied", "integer", ".status.appliedDevices"),
            PrinterColumn("Running", "integer", ".status.runningDevices"),
            PrinterColumn("Failed", "integer", ".status.failedDevices"),
            AGE,
        ),
        required=("spec",),
        rules=(
            Rule(
                ("spec",),
                "has(self.device) || has(self.deviceSelector)",
                "set spec.device (one device) or spec.deviceSelector (a label selector)",
            ),
            Rule(
                ("spec", "pod", "spec", "containers", "items"),
                "!has(self.livenessProbe) && !has(self.readinessProbe) && !has(self.startupProbe)",
                "probes are not supported on devices",
            ),
            Rule(
                ("spec", "pod", "spec", "containers", "items"),
                "!has(self.lifecycle)",
                "lifecycle hooks are not supported on devices",
            ),
            Rule(
                ("spec", "pod", "spec", "containers", "items"),
                "!has(self.volumeDevices)",
                "volumeDevices are not supported on devices",
            ),
            Rule(
                ("spec", "pod", "spec", "containers"),
                "self.all(c, self.exists_one(d, d.name == c.name))",
                "container names must be unique",
            ),
        ),
    ),
    KindSpec(
        model=EdgeDeviceSignedRequest,
        singular="edgedevicesignedrequest",
        short_names=("edsr", "enrolment"),
        columns=(
            PrinterColumn("Namespace", "string", ".spec.targetNamespace"),
            PrinterColumn("Set", "string", ".spec.targetSet"),
            PrinterColumn("Approved", "boolean", ".spec.approved"),
            PrinterColumn("Phase", "string", ".status.phase"),
            AGE,
        ),
        required=("spec",),
    ),
)


def kind_spec(kind: str) -> KindSpec:
    for spec in KINDS:
        if spec.kind == kind:
            return spec
    raise KeyError(kind)

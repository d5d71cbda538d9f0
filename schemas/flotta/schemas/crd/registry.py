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

_COUNT_OR_PERCENT = "type(self) == int ? self >= {low} : self.matches('^{pattern}%$')"


def rollout_rules() -> tuple[Rule, ...]:
    """The CEL rules of ``spec.rolloutPolicy`` (EdgeWorkload and EdgeDeviceSet alike): what
    the OpenAPI schema alone cannot say about a policy."""
    policy = ("spec", "rolloutPolicy")
    budget = (*policy, "disruptionBudget")
    return (
        Rule(
            (*policy, "batches", "items"),
            "has(self.selector) || has(self.limit)",
            "a batch needs a selector, a limit or both",
        ),
        Rule(
            (*policy, "batches", "items", "limit"),
            _COUNT_OR_PERCENT.format(low=1, pattern="([1-9][0-9]?|100)"),
            "limit is a device count of at least 1 or a percentage from 1% to 100%",
        ),
        Rule(
            budget,
            "has(self.maxUnavailable) || has(self.minAvailable)",
            "a disruption budget needs maxUnavailable, minAvailable or both",
        ),
        Rule(
            (*budget, "maxUnavailable"),
            _COUNT_OR_PERCENT.format(low=1, pattern="([1-9][0-9]?|100)"),
            "maxUnavailable is a device count of at least 1 or a percentage from 1% to 100%",
        ),
        Rule(
            (*budget, "minAvailable"),
            _COUNT_OR_PERCENT.format(low=0, pattern="([1-9]?[0-9])"),
            "minAvailable is a device count or a percentage from 0% to 99%",
        ),
        Rule(
            (*budget, "groupBy"),
            "self.all(k, self.exists_one(j, j == k))",
            "groupBy label keys must be unique",
        ),
        Rule(
            policy,
            "!has(self.batchTimeout) || !has(self.healthGate)"
            " || !has(self.healthGate.timeoutSeconds)"
            " || duration(self.batchTimeout) > duration(string(self.healthGate.timeoutSeconds)"
            " + 's')",
            "batchTimeout must be longer than healthGate.timeoutSeconds: a device needs that "
            "long to judge a version",
        ),
        Rule(
            (*policy, "approval"),
            "!has(self.batch) || has(self.revision)",
            "approval.batch needs approval.revision (status.rollout.revision): an approval is "
            "for one revision",
        ),
    )


def _rollout_columns() -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn("Revision", "integer", ".status.rollout.revision", priority=1),
        PrinterColumn(
            "Rollout",
            "string",
            ".status.rollout.phase",
            "Progressing, Paused, WaitingForApproval, Halted or Complete",
        ),
        PrinterColumn("Batch", "integer", ".status.rollout.currentBatch", "batch in progress"),
        PrinterColumn(
            "Updated", "integer", ".status.rollout.updatedDevices", "on the new revision, healthy"
        ),
    )


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
            PrinterColumn(
                "Failed",
                "string",
                ".status.failedVersion.reason",
                "why the last failed version failed",
                priority=1,
            ),
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
        columns=(PrinterColumn("Members", "integer", ".status.members"), *_rollout_columns(), AGE),
        rules=rollout_rules(),
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
            *_rollout_columns(),
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
                "(!has(self.livenessProbe) || !has(self.livenessProbe.grpc))"
                " && (!has(self.readinessProbe) || !has(self.readinessProbe.grpc))"
                " && (!has(self.startupProbe) || !has(self.startupProbe.grpc))",
                "gRPC probes are not run on devices (use exec, httpGet or tcpSocket)",
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
            *rollout_rules(),
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

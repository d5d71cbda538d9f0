"""Safe rollouts: ``spec.rolloutPolicy`` of an EdgeWorkload or EdgeDeviceSet, its
``status.rollout``, and ``spec.updatePolicy`` (update windows) of an EdgeDevice or
EdgeDeviceSet. ``docs/rollouts.md`` is the guide; the CEL rules that refuse invalid policies
are in :mod:`flotta.schemas.crd.registry` (:func:`rollout_rules`).

Counts or percentages (``limit``, ``maxUnavailable``, ``minAvailable``) are Kubernetes
int-or-string values: ``3`` is three devices, ``"10%"`` a tenth. Durations are Go duration
strings as Kubernetes writes them (``90s``, ``15m``, ``1h30m``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from flotta.schemas.base import ApiModel
from flotta.schemas.crd.common import Condition, LabelSelector

PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
DURATION_PATTERN = DURATION.pattern
PERCENT_PATTERN = PERCENT.pattern
# Five cron fields: minute hour day-of-month month day-of-week.
CRON_PATTERN = r"^\s*[0-9A-Za-z*?,/\-]+(\s+[0-9A-Za-z*?,/\-]+){4}\s*$"
MAX_BATCHES = 16
MAX_FAILURE_SAMPLE = 10
# On an EdgeWorkload or EdgeDeviceSet: a new value retries its rollout (docs/rollouts.md).
RETRY_ROLLOUT_ANNOTATION = "flotta.io/retry-rollout"
MAX_RETRY_REQUEST = 128
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """A Go duration string (``1h30m``, ``90s``, ``250ms``) as a timedelta."""
    if not DURATION.match(text):
        raise ValueError(f"not a duration: {text!r} (write it like 90s, 15m or 1h30m)")
    seconds = sum(
        float(number) * _DURATION_UNITS[unit]
        for number, _, unit in re.findall(r"([0-9]+(\.[0-9]+)?)(ms|s|m|h)", text)
    )
    return timedelta(seconds=seconds)


def _duration(text: str) -> str:
    parse_duration(text)
    return text


def _count_or_percent(value: int | str) -> int | str:
    if isinstance(value, str) and not PERCENT.match(value):
        raise ValueError(f"not a percentage: {value!r} (write it like 10%)")
    return value


# An int-or-string field: the CRD generator writes ``x-kubernetes-int-or-string``.
IntOrPercent = Annotated[
    int | str,
    AfterValidator(_count_or_percent),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
Duration = Annotated[str, Field(max_length=64, pattern=DURATION_PATTERN), AfterValidator(_duration)]
Percentage = Annotated[str, Field(pattern=PERCENT_PATTERN)]


def scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """A count, or a percentage of ``total`` rounded up or down."""
    if isinstance(value, int):
        return value
    share = int(value.rstrip("%")) * total / 100
    return math.ceil(share - 1e-9) if round_up else math.floor(share + 1e-9)


def percent(value: str) -> int:
    return int(value.rstrip("%"))


class RolloutBatch(ApiModel):
    """One step of the rollout: which of the devices still on the previous revision take
    the new one next."""

    selector: LabelSelector | None = None
    """Only devices whose labels match are in the batch; unset: any device left."""
    limit: IntOrPercent | None = None
    """At most this many of the devices left (after the earlier batches) that the selector
    matches: a count (3) or a percentage of the devices left ("10%", rounded up). Unset: every
    device the selector matches."""


class DisruptionBudget(ApiModel):
    """How many devices of a group may be updating (or have failed) at once. Devices are
    grouped by the values of the groupBy labels; every targeted device counts, offline ones as
    unavailable."""

    group_by: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=317)]], Field(max_length=8)
    ] = Field(default_factory=list)
    """Label keys that group the devices (for example site); empty: the whole selection is
    one group."""
    max_unavailable: IntOrPercent | None = None
    """At most this many devices of a group updating, failed or offline at once: a count or a
    percentage of the group (rounded down, at least 1)."""
    min_available: IntOrPercent | None = None
    """At least this many devices of a group online and not updating: a count or a
    percentage of the group (rounded up)."""


class HealthGate(ApiModel):
    """When a device counts a new version as healthy, and when it gives up and rolls back to
    the last version it saw healthy (rendered into the desired state's ``health``)."""

    stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    """Seconds every container must keep running, without an exit or a restart and with its
    probes passing, before the version counts as healthy (default 60)."""
    timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    """Seconds after the start of the apply after which a version not yet healthy counts as
    failed and is rolled back (default 300)."""


class RolloutApproval(ApiModel):
    """Manual approval between batches, as a field GitOps can commit."""

    required: bool = False
    """True: the rollout waits (phase WaitingForApproval) before each batch after the
    first until batch and revision approve it."""
    revision: Annotated[int, Field(ge=1)] | None = None
    """The revision the approval is for (status.rollout.revision); an approval of another
    revision counts for nothing."""
    batch: Annotated[int, Field(ge=1, le=MAX_BATCHES + 1)] | None = None
    """Batches up to and including this number (the first is 1) may start."""


class RolloutPolicy(ApiModel):
    """How a change reaches the selected devices: in ordered batches, each one only when
    enough of the previous one runs the new revision healthy. Unset: every device at once."""

    batches: Annotated[list[RolloutBatch], Field(max_length=MAX_BATCHES)] = Field(
        default_factory=list
    )
    """The batches in order. Devices no batch takes form a last batch of their own."""
    success_threshold: Percentage = "90%"
    """The share of a batch that must run the new revision healthy before the next batch
    starts (default 90%); when it can no longer be reached the rollout halts."""
    batch_timeout: Duration = "15m"
    """How long a device of a batch may take to run the new revision healthy once it got it
    (default 15m); later, and an offline device too, it counts as failed. A device waiting for
    its update window is not counted failed."""
    disruption_budget: DisruptionBudget | None = None
    """Limits how many devices of a group update at once; unset: no limit beyond the batch."""
    paused: bool = False
    """True: no further device gets the new revision and no batch starts until it is false
    again (phase Paused)."""
    approval: RolloutApproval | None = None
    """Manual approval before each batch after the first; unset: batches follow each other
    by themselves."""
    health_gate: HealthGate | None = None
    """How devices judge a new version healthy; unset: 60 s stable, 300 s timeout."""


RolloutPhase = Literal["Progressing", "Paused", "WaitingForApproval", "Halted", "Complete"]


class RolloutFailure(ApiModel):
    """One device that failed the new revision, as it reported."""

    device: Annotated[str, Field(max_length=253)]
    """The EdgeDevice's name."""
    reason: Annotated[str, Field(max_length=64)]
    """image-pull-failed, container-exited, crash-loop, health-check-failed, timed-out,
    apply-failed (the device's words), or no-report (nothing heard from the device within
    batchTimeout)."""
    workload: Annotated[str, Field(max_length=253)] = ""
    """The workload that failed, when the device says."""
    container: Annotated[str, Field(max_length=253)] = ""
    """The container that failed, when the device says."""
    exit_code: int | None = None
    """The container's exit code, when it exited."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """The device's message (probe output, pull error), shortened."""
    rolled_back: bool | None = None
    """Whether the device runs its last known good version again."""
    time: datetime | None = None
    """When the device found the version failed."""


class RolloutStatus(ApiModel):
    """Where the rollout of the latest revision stands (written by the operator)."""

    revision: int | None = None
    """The revision being rolled out (the ControllerRevision's revision number)."""
    revision_name: Annotated[str, Field(max_length=253)] = ""
    """The ControllerRevision that holds it."""
    stable_revision_name: Annotated[str, Field(max_length=253)] = ""
    """The last revision whose rollout completed: devices not yet in the rollout run it;
    empty while there is none (they run none)."""
    phase: RolloutPhase | None = None
    """Progressing, Paused, WaitingForApproval (the next batch needs approval), Halted (a
    batch missed its success threshold: no further device gets the revision until the spec
    changes again) or Complete."""
    current_batch: int | None = None
    """The batch in progress (the first is 1)."""
    batches: int | None = None
    """How many batches the rollout has, the last one (devices no batch took) included."""
    start_time: datetime | None = None
    """When the rollout of this revision started."""
    batch_start_time: datetime | None = None
    """When the current batch started."""
    batch_cutoffs: Annotated[
        list[Annotated[str, Field(max_length=16)]], Field(max_length=MAX_BATCHES + 1)
    ] = Field(default_factory=list)
    """For each started batch, the highest rank (a hash of the device name) it admitted:
    the state that keeps batch membership across operator restarts. Not for people."""
    targeted_devices: int | None = None
    """Devices the rollout covers."""
    updated_devices: int | None = None
    """Devices that run the revision and passed its health gate."""
    updating_devices: int | None = None
    """Devices that got the revision and have not passed its health gate yet."""
    failed_devices: int | None = None
    """Devices that failed the revision (they rolled back) or did not report within
    batchTimeout."""
    pending_devices: int | None = None
    """Devices not in the rollout yet, or waiting for their update window."""
    batch_devices: int | None = None
    """Devices in the current batch."""
    batch_updated_devices: int | None = None
    """Devices of the current batch that passed the health gate."""
    failures: Annotated[list[RolloutFailure], Field(max_length=MAX_FAILURE_SAMPLE)] | None = None
    """A sample of the devices that failed, with their reasons (at most 10; failedDevices
    counts them all)."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """What the rollout waits for, or why it halted."""
    conditions: list[Condition] | None = None
    """Progressing (True while devices are getting the revision) and Halted."""
    observed_generation: int | None = None
    """The metadata.generation the rollout follows."""
    retry: Annotated[int, Field(ge=0)] | None = None
    """The retry token of the rollout's latest retry, as the devices that failed the
    revision get it in their desired state; unset: not retried."""
    retry_request: Annotated[str, Field(max_length=MAX_RETRY_REQUEST)] | None = None
    """The value of the annotation flotta.io/retry-rollout the rollout acted on last (its
    SHA-256 when longer than 128 characters); a different value retries the rollout."""


class UpdateSchedule(ApiModel):
    """When devices may apply a new version: a window that opens at each instant of a cron
    expression. Outside it devices download (pull images) but do not apply."""

    at: Annotated[str, Field(min_length=9, max_length=256, pattern=CRON_PATTERN)]
    """A 5-field cron expression (minute hour day-of-month month day-of-week) for the instants
    the window opens, for example "0 2 * * *" for 02:00 every day."""
    time_zone: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
    ] = "UTC"
    """The IANA time zone at is read in (for example Europe/Berlin; default UTC)."""
    start_grace_duration: Duration | None = None
    """How long the window stays open after each instant of at: an apply may start within
    it (for example 2h). Unset: one hour."""


class UpdatePolicy(ApiModel):
    """When the device applies new versions (workloads, configuration and OS)."""

    update_schedule: UpdateSchedule | None = None
    """The update window; unset: new versions apply at once."""

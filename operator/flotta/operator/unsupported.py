"""Upstream Flotta fields that are accepted (so upstream manifests apply unchanged) but that
no device acts on, and the ``UnsupportedFields`` condition that names those a resource sets.
Pure.

The condition is there only while such a field is set: ``status: "True"``, reason
``FieldsNotActedOn``, and a message naming each field with why it has no effect. When the
fields are removed, the condition goes. An EdgeDevice whose configuration comes from its
EdgeDeviceSet names the set's fields (``EdgeDeviceSet shop-floor spec.mounts``), since
those are the ones in effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from flotta.schemas.crd.common import Condition
from flotta.schemas.crd.config import DeviceConfiguration
from flotta.schemas.crd.workload import EdgeWorkloadSpec

UNSUPPORTED_FIELDS = "UnsupportedFields"
REASON = "FieldsNotActedOn"

# (field path, whether a configuration sets it, why it has no effect)
DEVICE_FIELDS: tuple[tuple[str, Callable[[DeviceConfiguration], bool], str], ...] = (
    ("spec.mounts", lambda c: bool(c.mounts), "the agent mounts no block devices"),
    (
        "spec.storage.s3",
        lambda c: c.storage is not None and c.storage.s3 is not None,
        "there is no data sync to S3",
    ),
    (
        "spec.metrics.dataTransfer",
        lambda c: c.metrics is not None and c.metrics.data_transfer is not None,
        "there is no data sync to measure",
    ),
)
WORKLOAD_FIELDS: tuple[tuple[str, Callable[[EdgeWorkloadSpec], bool], str], ...] = (
    (
        "spec.data.paths",
        lambda s: s.data is not None and bool(s.data.paths),
        "there is no data sync to S3",
    ),
    (
        "spec.data.ingress",
        lambda s: s.data is not None and bool(s.data.ingress),
        "there is no data sync from S3",
    ),
    (
        "spec.data.egress",
        lambda s: s.data is not None and bool(s.data.egress),
        "there is no data sync to S3",
    ),
)


def device_fields(source: DeviceConfiguration, *, device_set: str = "") -> list[str]:
    """The unsupported fields that the configuration in effect sets, each with its reason;
    ``device_set``: the name of the set the configuration comes from, if it does."""
    where = f"EdgeDeviceSet {device_set} " if device_set else ""
    return [f"{where}{path} ({why})" for path, is_set, why in DEVICE_FIELDS if is_set(source)]


def workload_fields(spec: EdgeWorkloadSpec) -> list[str]:
    return [f"{path} ({why})" for path, is_set, why in WORKLOAD_FIELDS if is_set(spec)]


def unsupported_condition(
    fields: Sequence[str], *, now: datetime, generation: int | None = None
) -> Condition | None:
    """The condition naming ``fields``; None when there are none."""
    if not fields:
        return None
    return Condition(
        type=UNSUPPORTED_FIELDS,
        status="True",
        reason=REASON,
        message="set, but the devices do not act on them: " + "; ".join(fields),
        last_transition_time=now,
        observed_generation=generation,
    )


def device_conditions_patch(
    current: Sequence[Condition], fields: Sequence[str], *, now: datetime
) -> list[dict[str, Any]] | None:
    """The EdgeDevice's whole ``conditions`` list (a merge patch replaces lists) with its
    UnsupportedFields condition made to name ``fields``; None when the status already says
    so, so that an unchanged device costs no write. The other conditions stay as they are,
    in their order; the transition time stays while the condition does."""
    wanted = unsupported_condition(fields, now=now)
    existing = next((c for c in current if c.type == UNSUPPORTED_FIELDS), None)
    if wanted is None and existing is None:
        return None
    if existing is not None and wanted is not None:
        if (existing.status, existing.reason, existing.message) == (
            wanted.status,
            wanted.reason,
            wanted.message,
        ):
            return None
        if existing.status == wanted.status:
            wanted = wanted.model_copy(
                update={"last_transition_time": existing.last_transition_time}
            )
    others = [c.to_api() for c in current if c.type != UNSUPPORTED_FIELDS]
    return others if wanted is None else [*others, wanted.to_api()]

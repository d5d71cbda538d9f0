"""EdgeWorkload and EdgeDeviceSet status from the fleet: counts and conditions. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from flotta.operator.rendering import InvalidWorkload, RenderedWorkload
from flotta.operator.unsupported import UNSUPPORTED_FIELDS
from flotta.schemas.crd.common import Condition
from flotta.schemas.crd.device import EdgeDevice

VALID = "Valid"
DEPLOYED = "Deployed"


def set_condition(previous: Iterable[Condition], condition: Condition) -> list[Condition]:
    """Replace the condition of the same type, keeping its transition time when its status
    did not change."""
    result = []
    for old in previous:
        if old.type == condition.type:
            if old.status == condition.status:
                condition = condition.model_copy(
                    update={"last_transition_time": old.last_transition_time}
                )
            continue
        result.append(old)
    result.append(condition)
    return sorted(result, key=lambda c: c.type)


def workload_status(
    name: str,
    *,
    generation: int,
    result: RenderedWorkload | InvalidWorkload,
    targets: Iterable[str],
    devices: Mapping[str, EdgeDevice],
    current_versions: Mapping[str, str],
    previous: Iterable[Condition],
    now: datetime,
    unsupported: Condition | None = None,
) -> dict[str, Any]:
    """The status subresource of an EdgeWorkload as a merge-patch body; ``unsupported``: its
    UnsupportedFields condition, if it sets such fields."""
    targeted = applied = running = failed = 0
    for device_name in targets:
        targeted += 1
        device = devices.get(device_name)
        status = device.status if device is not None else None
        if status is None:
            continue
        current = current_versions.get(device_name)
        if current and status.applied_version == current:
            applied += 1
        for report in status.workloads or ():
            if report.name == name:
                running += report.phase == "Running"
                failed += report.phase == "Failed"
    if isinstance(result, InvalidWorkload):
        valid = Condition(
            type=VALID,
            status="False",
            reason="InvalidSpec",
            message=result.message[:32768],
            last_transition_time=now,
            observed_generation=generation,
        )
    else:
        valid = Condition(
            type=VALID,
            status="True",
            reason="Rendered",
            message="published to the targeted devices",
            last_transition_time=now,
            observed_generation=generation,
        )
    deployed = Condition(
        type=DEPLOYED,
        status="True" if applied == targeted else "False",
        reason="AllApplied" if applied == targeted else "Applying",
        message=f"{applied} of {targeted} targeted devices applied the current desired state",
        last_transition_time=now,
        observed_generation=generation,
    )
    conditions = set_condition(set_condition(previous, valid), deployed)
    if unsupported is not None:
        conditions = set_condition(conditions, unsupported)
    else:
        conditions = [c for c in conditions if c.type != UNSUPPORTED_FIELDS]
    return {
        "targetedDevices": targeted,
        "appliedDevices": applied,
        "runningDevices": running,
        "failedDevices": failed,
        "observedGeneration": generation,
        "conditions": [c.to_api() for c in conditions],
    }


def same_status(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    """Whether writing ``b`` would change nothing a user sees (transition times aside)."""
    if a is None:
        return False

    def strip(status: Mapping[str, Any]) -> dict[str, Any]:
        copy = dict(status)
        copy["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions") or []
        ]
        return copy

    return strip(a) == strip(b)

"""The UnsupportedFields condition: which fields, and when the device's list changes."""

from __future__ import annotations

from datetime import UTC, datetime

from flotta.operator.unsupported import (
    device_conditions_patch,
    device_fields,
    unsupported_condition,
    workload_fields,
)
from flotta.schemas.crd.common import Condition
from flotta.schemas.crd.config import DeviceConfiguration
from flotta.schemas.crd.workload import EdgeWorkloadSpec

EARLY = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 6, 1, tzinfo=UTC)
ONLINE = Condition(type="Online", status="True", reason="Heartbeating", last_transition_time=EARLY)


def test_the_fields_set_are_named_with_why_and_where() -> None:
    assert device_fields(DeviceConfiguration()) == []
    source = DeviceConfiguration.model_validate(
        {
            "mounts": [{"device": "/dev/sdb1", "folder": "/data", "type": "ext4"}],
            "storage": {"s3": {"secretName": "s"}},
            "metrics": {"dataTransfer": {}},
        }
    )
    assert device_fields(source, device_set="north") == [
        "EdgeDeviceSet north spec.mounts (the agent mounts no block devices)",
        "EdgeDeviceSet north spec.storage.s3 (there is no data sync to S3)",
        "EdgeDeviceSet north spec.metrics.dataTransfer (there is no data sync to measure)",
    ]
    # an empty storage section or an empty mount list sets nothing
    assert device_fields(DeviceConfiguration.model_validate({"storage": {}, "mounts": []})) == []
    spec = EdgeWorkloadSpec.model_validate(
        {
            "pod": {"spec": {"containers": [{"name": "a", "image": "i"}]}},
            "data": {"egress": [{"source": "a", "target": "b"}]},
        }
    )
    assert workload_fields(spec) == ["spec.data.egress (there is no data sync to S3)"]


def test_the_device_list_changes_only_when_what_it_says_does() -> None:
    fields = ["spec.mounts (x)"]
    assert device_conditions_patch([ONLINE], [], now=LATER) is None
    added = device_conditions_patch([ONLINE], fields, now=EARLY)
    assert added is not None
    assert [c["type"] for c in added] == ["Online", "UnsupportedFields"]
    current = [Condition.model_validate(c) for c in added]
    assert device_conditions_patch(current, fields, now=LATER) is None
    changed = device_conditions_patch(current, [*fields, "spec.storage.s3 (y)"], now=LATER)
    assert changed is not None
    assert changed[1]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # still True: time kept
    assert "spec.storage.s3 (y)" in changed[1]["message"]
    assert device_conditions_patch(current, [], now=LATER) == [ONLINE.to_api()]
    assert unsupported_condition([], now=LATER) is None

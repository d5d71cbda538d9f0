"""Pure decisions: approval policy, labels, publishing ledger, workload status."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from flotta.operator.errors import OperatorError
from flotta.operator.hardware_labels import hardware_labels
from flotta.operator.labels import labels_patch, workload_labels_patch
from flotta.operator.ledger import Entry, Ledger
from flotta.operator.policy import ApprovalPolicy
from flotta.operator.reconciling import told_patch
from flotta.operator.rendering import InvalidWorkload
from flotta.operator.workload_status import same_status, workload_status
from flotta.schemas.crd.common import Condition
from flotta.schemas.crd.device import EdgeDeviceStatus
from flotta.schemas.wire.hardware import Hardware
from tests.operator.builders import device

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_policy_by_namespace_and_set() -> None:
    policy = ApprovalPolicy.parse(["lab", "prod/canary"])
    assert policy.approves("lab", "")
    assert policy.approves("prod", "canary")
    assert not policy.approves("prod", "")
    assert not policy.approves("prod", "other")
    assert ApprovalPolicy.parse(["*"]).approves("any", "")
    assert not ApprovalPolicy.parse([]).approves("lab", "")


@pytest.mark.parametrize("entry", ["Bad_NS", "prod/", ""])
def test_policy_refuses_bad_entries(entry: str) -> None:
    with pytest.raises(OperatorError, match="auto-approve"):
        ApprovalPolicy.parse([entry])


def test_hardware_labels_are_sanitised() -> None:
    hardware = msgspec.convert(
        {
            "hostname": "Edge-01.Local",
            "cpu": {"architecture": "x86_64", "modelName": "Intel(R) Core(TM) i7"},
            "systemVendor": {
                "manufacturer": "ACME Inc.",
                "productName": "",
                "serialNumber": "SN 42",
            },
        },
        Hardware,
    )
    assert hardware_labels(hardware) == {
        "device.hostname": "edge-01.local",
        "device.cpu-architecture": "x86_64",
        "device.cpu-model": "intelrcoretmi7",
        "device.system-manufacturer": "acmeinc",
        "device.system-serial": "sn42",
    }


def test_workload_labels_patch_adds_and_removes() -> None:
    current = {"workload/old": "true", "workload/kept": "true", "site": "x"}
    assert workload_labels_patch(current, ["kept", "new"]) == {
        "workload/old": None,
        "workload/new": "true",
    }
    assert workload_labels_patch(current, ["kept", "old"]) is None
    assert labels_patch({"a": "1"}, {"a": "1"}) is None
    assert labels_patch({"a": "1"}, {"a": "2"}) == {"a": "2"}


def test_ledger_publishes_only_new_versions() -> None:
    ledger = Ledger()
    key = ("fleet", "d1")
    assert ledger.update(key, "v1", b"1", 60)
    assert ledger.start(key) == ("v1", b"1")
    assert ledger.start(key) is None  # in flight
    assert not ledger.acknowledged(key, "v1")
    assert not ledger.update(key, "v1", b"1", 60)
    assert ledger.update(key, "v2", b"2", 60)
    assert ledger.start(key) == ("v2", b"2")
    ledger.failed(key, "v2")
    assert ledger.start(key) == ("v2", b"2")


def test_the_status_says_the_version_and_the_heartbeat_period_told() -> None:
    entry = Entry(version="v2", heartbeat_period=10)
    told = {"desiredVersion": "v2", "desiredHeartbeatPeriodSeconds": 10}
    assert told_patch(entry, None) == told
    assert told_patch(entry, EdgeDeviceStatus(desired_version="v1")) == told
    # a status written before the period was recorded gets it once, with the same version
    assert told_patch(entry, EdgeDeviceStatus(desired_version="v2")) == told
    said = EdgeDeviceStatus(desired_version="v2", desired_heartbeat_period_seconds=10)
    assert told_patch(entry, said) is None  # nothing changed: nothing to write
    assert told_patch(None, said) is None
    assert told_patch(Entry(), None) is None  # nothing assembled yet


def test_ledger_republishes_when_the_device_announces_another_version() -> None:
    ledger = Ledger()
    key = ("fleet", "d1")
    ledger.update(key, "v1", b"1", 60)
    ledger.start(key)
    ledger.acknowledged(key, "v1")
    assert not ledger.announced(key, "v1")
    assert ledger.announced(key, "v0")
    assert ledger.start(key) == ("v1", b"1")


def test_ledger_forgets_everything_after_a_reconnect() -> None:
    ledger = Ledger()
    for i in range(3):
        ledger.update(("fleet", f"d{i}"), "v", b"x", 60)
        ledger.start(("fleet", f"d{i}"))
        ledger.acknowledged(("fleet", f"d{i}"), "v")
    assert len(ledger.forget_published()) == 3
    assert ledger.start(("fleet", "d0")) == ("v", b"x")


def test_ledger_names_what_the_broker_never_acknowledged() -> None:
    ledger = Ledger()
    keys = [("fleet", f"d{i}") for i in range(4)]
    for key in keys:
        ledger.update(key, "v1", b"1", 60)
    for key in keys[:3]:
        ledger.start(key)
    ledger.acknowledged(keys[0], "v1")
    ledger.failed(keys[1], "v1")  # the connection dropped before its PUBACK
    ledger.acknowledged(keys[2], "v1")
    ledger.update(keys[2], "v2", b"2", 60)  # changed since
    assert sorted(ledger.unpublished()) == [keys[1], keys[2], keys[3]]
    assert ledger.start(keys[0]) is None


def test_workload_status_counts_and_conditions() -> None:
    devices = {
        "a": device(
            "a", status={"appliedVersion": "va", "workloads": [{"name": "web", "phase": "Running"}]}
        ),
        "b": device(
            "b", status={"appliedVersion": "old", "workloads": [{"name": "web", "phase": "Failed"}]}
        ),
        "c": device("c"),
    }
    from flotta.operator.rendering import render_workload
    from tests.operator.builders import workload

    model, raw = workload("web")
    no_data: dict[str, dict[str, str]] = {}
    result = render_workload(model, raw, secrets=no_data.get, configmaps=no_data.get)
    status = workload_status(
        "web",
        generation=3,
        result=result,
        targets=["a", "b", "c"],
        devices=devices,
        current_versions={"a": "va", "b": "vb", "c": "vc"},
        previous=[],
        now=NOW,
    )
    assert (status["targetedDevices"], status["appliedDevices"]) == (3, 1)
    assert (status["runningDevices"], status["failedDevices"]) == (1, 1)
    deployed = next(c for c in status["conditions"] if c["type"] == "Deployed")
    assert deployed["status"] == "False"


def test_invalid_workload_condition_keeps_transition_time_while_unchanged() -> None:
    invalid = InvalidWorkload("fleet", "web", ("spec.pod.spec.containers[0].lifecycle: no",))
    first = workload_status(
        "web",
        generation=1,
        result=invalid,
        targets=[],
        devices={},
        current_versions={},
        previous=[],
        now=NOW,
    )
    previous = [Condition.model_validate(c) for c in first["conditions"]]
    later = workload_status(
        "web",
        generation=1,
        result=invalid,
        targets=[],
        devices={},
        current_versions={},
        previous=previous,
        now=NOW + timedelta(hours=1),
    )
    valid = next(c for c in later["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False"
    assert "lifecycle" in valid["message"]
    assert valid["lastTransitionTime"] == first["conditions"][1]["lastTransitionTime"]
    assert same_status(first, later)

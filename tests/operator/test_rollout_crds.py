"""spec.rolloutPolicy and spec.updatePolicy through the local Kubernetes API: valid policies
are stored (with their defaults), invalid ones refused with a message that says what to fix,
and upstream manifests without them apply unchanged."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.workload import EdgeWorkload
from tests.fixtures.kube import KUBECTL
from tests.fixtures.kubeprocess import LocalKube, running_kube
from tests.operator.builders import workload_obj
from tests.operator.conftest import NAMESPACE

GOOD_POLICY: dict[str, Any] = {
    "batches": [
        {"selector": {"matchLabels": {"ring": "canary"}}, "limit": 1},
        {"limit": "10%"},
        {"limit": "50%"},
    ],
    "successThreshold": "95%",
    "batchTimeout": "10m",
    "disruptionBudget": {"groupBy": ["site"], "maxUnavailable": "25%", "minAvailable": 1},
    "approval": {"required": True, "revision": 2, "batch": 3},
    "healthGate": {"stabilizationSeconds": 30, "timeoutSeconds": 120},
}


@pytest.fixture(scope="module")
def module_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKube]:
    """One local API for the module: each test uses names of its own."""
    with running_kube(tmp_path_factory.mktemp("rollout-crds") / "kube", NAMESPACE) as (kube, _):
        yield kube


@pytest.fixture
def objects(module_kube: LocalKube) -> Iterator[client.CustomObjectsApi]:
    api = module_kube.api_client()
    try:
        yield client.CustomObjectsApi(api)
    finally:
        api.close()


def _create(objects: client.CustomObjectsApi, plural: str, body: dict[str, Any]) -> Any:
    return objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)


def _workload(name: str, policy: dict[str, Any] | None) -> dict[str, Any]:
    extra = {"rolloutPolicy": policy} if policy is not None else {}
    return workload_obj(name, selector={"matchLabels": {"app": "x"}}, extra_spec=extra)


def _refused(objects: client.CustomObjectsApi, plural: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as refused:
        _create(objects, plural, body)
    assert refused.value.status == 422
    message: str = json.loads(refused.value.body or "{}")["message"]
    return message


def test_a_full_policy_is_stored_and_read_back_by_the_models(
    objects: client.CustomObjectsApi,
) -> None:
    stored = _create(objects, "edgeworkloads", _workload("full", GOOD_POLICY))
    policy = stored["spec"]["rolloutPolicy"]
    assert policy["batches"][1]["limit"] == "10%"
    assert policy["batches"][0]["limit"] == 1
    model = EdgeWorkload.model_validate(stored)
    assert model.spec.rollout_policy is not None
    assert model.spec.rollout_policy.disruption_budget is not None
    assert model.spec.rollout_policy.disruption_budget.max_unavailable == "25%"


def test_defaults_are_filled_in_and_absence_means_no_policy(
    objects: client.CustomObjectsApi,
) -> None:
    stored = _create(objects, "edgeworkloads", _workload("minimal", {"batches": [{"limit": 1}]}))
    policy = stored["spec"]["rolloutPolicy"]
    assert policy["successThreshold"] == "90%"
    assert policy["batchTimeout"] == "15m"
    plain = _create(objects, "edgeworkloads", _workload("plain", None))
    assert "rolloutPolicy" not in plain["spec"]
    assert EdgeWorkload.model_validate(plain).spec.rollout_policy is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"batches": [{}]}, "a batch needs a selector, a limit or both"),
        ({"batches": [{"limit": 0}]}, "limit is a device count of at least 1 or a percentage"),
        ({"batches": [{"limit": "150%"}]}, "limit is a device count of at least 1"),
        ({"batches": [{"limit": "ten"}]}, "limit is a device count of at least 1"),
        ({"successThreshold": "95"}, "spec.rolloutPolicy.successThreshold"),
        ({"batchTimeout": "ten minutes"}, "spec.rolloutPolicy.batchTimeout"),
        (
            {"batchTimeout": "2m", "healthGate": {"timeoutSeconds": 300}},
            "batchTimeout must be longer than healthGate.timeoutSeconds",
        ),
        ({"disruptionBudget": {"groupBy": ["site"]}}, "needs maxUnavailable, minAvailable"),
        ({"disruptionBudget": {"maxUnavailable": 0}}, "maxUnavailable is a device count"),
        ({"disruptionBudget": {"minAvailable": "100%"}}, "minAvailable is a device count"),
        (
            {"disruptionBudget": {"groupBy": ["a", "a"], "maxUnavailable": 1}},
            "groupBy label keys must be unique",
        ),
        ({"approval": {"required": True, "batch": 2}}, "approval.batch needs approval.revision"),
        ({"batches": [{"limit": 1}] * 17}, "spec.rolloutPolicy.batches"),
        ({"healthGate": {"timeoutSeconds": 0}}, "spec.rolloutPolicy.healthGate.timeoutSeconds"),
    ],
)
def test_invalid_policies_are_refused_with_a_clear_message(
    objects: client.CustomObjectsApi, policy: dict[str, Any], expected: str
) -> None:
    message = _refused(objects, "edgeworkloads", _workload("bad", policy))
    assert expected in message
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeviceSet",
        "metadata": {"name": "bad", "namespace": NAMESPACE},
        "spec": {"rolloutPolicy": policy},
    }
    assert expected in _refused(objects, "edgedevicesets", body)


def test_update_schedules_on_devices_and_sets(objects: client.CustomObjectsApi) -> None:
    schedule = {"at": "0 2 * * 1-5", "timeZone": "Europe/Berlin", "startGraceDuration": "2h"}
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeviceSet",
        "metadata": {"name": "nightly", "namespace": NAMESPACE},
        "spec": {"updatePolicy": {"updateSchedule": schedule}, "rolloutPolicy": GOOD_POLICY},
    }
    stored = EdgeDeviceSet.model_validate(_create(objects, "edgedevicesets", body))
    assert stored.spec.update_policy is not None
    assert stored.spec.update_policy.update_schedule is not None
    assert stored.spec.update_policy.update_schedule.start_grace_duration == "2h"
    device: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDevice",
        "metadata": {"name": "d1", "namespace": NAMESPACE},
        "spec": {"updatePolicy": {"updateSchedule": {"at": "*/30 * * * *"}}},
    }
    assert (
        _create(objects, "edgedevices", device)["spec"]["updatePolicy"]["updateSchedule"][
            "timeZone"
        ]
        == "UTC"
    )
    for bad, field in (
        ({"at": "every night"}, "updateSchedule.at"),
        ({"at": "0 2 * *"}, "updateSchedule.at"),
        ({"at": "0 2 * * *", "startGraceDuration": "2 hours"}, "startGraceDuration"),
    ):
        device["metadata"]["name"] = "d2"
        device["spec"] = {"updatePolicy": {"updateSchedule": bad}}
        assert field in _refused(objects, "edgedevices", device)


def test_the_table_shows_rollout_progress(
    module_kube: LocalKube, objects: client.CustomObjectsApi
) -> None:
    kube = module_kube
    _create(objects, "edgeworkloads", _workload("shown", GOOD_POLICY))
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        "shown",
        {
            "status": {
                "rollout": {
                    "revision": 2,
                    "phase": "Progressing",
                    "currentBatch": 2,
                    "updatedDevices": 7,
                }
            }
        },
    )
    table = subprocess.run(
        [KUBECTL, f"--kubeconfig={kube.kubeconfig}", "get", "ew", "shown", "-n", NAMESPACE],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    header, row = table.splitlines()[:2]
    assert "ROLLOUT" in header
    assert "BATCH" in header
    assert "UPDATED" in header
    assert "Progressing" in row

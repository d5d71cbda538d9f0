"""Retrying a halted rollout through the operator, the local Kubernetes API and a real
Mosquitto with TLS, with devices that behave as the agent does with retry tokens (they read
their desired state over MQTT, report over MQTT, and a stand-in bridge copies their reports into
the EdgeDevice statuses): after a new value of flotta.io/retry-rollout, exactly the devices that
failed get the token, apply the unchanged version again, and the rollout completes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.crd.rollout import RETRY_ROLLOUT_ANNOTATION
from flotta.schemas.wire.desired import DesiredState
from flotta.schemas.wire.status import StatusReport, VersionFailure
from tests.fixtures.brokers import ProbeFactory
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.builders import pod_spec, workload_obj
from tests.operator.conftest import NAMESPACE, Stack, patch_device_status, wait_until
from tests.operator.mqtt_devices import MqttDevices, online_devices
from tests.operator.test_rollout_integration import events, rollout

pytestmark = pytest.mark.slow

DEVICES = [f"d{i}" for i in range(10)]
POLICY = {"batches": [{"limit": 2}, {"limit": "50%"}], "successThreshold": "100%"}
GOOD, BAD = "localhost/web:1", "localhost/web:flaky"
MERGE = "application/merge-patch+json"


class AgentLikeDevices(MqttDevices):
    """Each device applies a new desired state unless it failed that version under a retry
    token at least as great (as the agent does), fails it while its image is in ``bad``, and
    reports over MQTT; its EdgeDevice status is written as the bridge would."""

    def __init__(self, stack: Stack, probes: dict[str, MqttProbe]) -> None:
        super().__init__(probes)
        self.stack = stack
        self.bad: set[str] = set()
        self.applied: dict[str, str] = {}
        self.failed: dict[str, VersionFailure] = {}
        self.tokens: dict[str, set[int]] = {name: set() for name in probes}  # tokens received

    def take(self, name: str, desired: DesiredState) -> None:
        self.tokens[name].add(desired.retry)
        failed = self.failed.get(name)
        if desired.version == self.applied.get(name):
            return
        if (
            failed is not None
            and failed.version == desired.version
            and desired.retry <= failed.retry
        ):
            return  # never again, but for a greater token
        now = datetime.now(UTC)
        images = {c["image"] for w in desired.workloads for c in w.pod_spec["containers"]}
        if images & self.bad:
            self.failed[name] = VersionFailure(
                version=desired.version,
                reason="container-exited",
                workload="web",
                time=now,
                rolled_back=True,
                retry=desired.retry,
            )
        else:
            self.applied[name] = desired.version
            self.failed.pop(name, None)
        report = StatusReport(
            time=now, applied_version=self.applied.get(name, ""), failed=self.failed.get(name)
        )
        self.report(name, report)
        bridged: dict[str, Any] = {"appliedVersion": self.applied.get(name) or None}
        failure = self.failed.get(name)
        bridged["failedVersion"] = (
            {
                "version": failure.version,
                "reason": failure.reason,
                "workload": failure.workload,
                "rolledBack": True,
                "retry": failure.retry,
            }
            if failure is not None
            else None
        )
        with contextlib.suppress(client.exceptions.ApiException):  # the next report says it
            patch_device_status(self.stack, name, bridged)


@pytest.fixture
def devices(stack: Stack, mqtt_probes: ProbeFactory) -> Iterator[AgentLikeDevices]:
    probes = online_devices(stack, mqtt_probes, DEVICES)
    with AgentLikeDevices(stack, probes) as agents:
        yield agents


def patch_workload(stack: Stack, body: dict[str, Any]) -> None:
    stack.objects.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "edgeworkloads", "web", body, _content_type=MERGE
    )


def test_a_halted_rollout_retried_without_a_spec_change_completes(
    stack: Stack, devices: AgentLikeDevices
) -> None:
    stack.start_operator()
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        workload_obj(
            "web",
            NAMESPACE,
            selector={"matchLabels": {"app": "web"}},
            pod=pod_spec(GOOD),
            extra_spec={"rolloutPolicy": POLICY},
        ),
    )
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=60)
    devices.bad.add(BAD)
    patch_workload(stack, {"spec": {"pod": {"spec": pod_spec(BAD)}}})
    wait_until(
        lambda: rollout(stack).get("phase") == "Halted" and rollout(stack)["revision"] == 2,
        timeout=60,
    )
    wait_until(lambda: len(devices.failed) == 2, timeout=30)
    # The halt may come with the batch's first failure; the second reaches the status after.
    wait_until(lambda: rollout(stack).get("failedDevices") == 2, timeout=30)
    halted = rollout(stack)
    assert halted["failedDevices"] == 2
    failed = set(devices.failed)

    # It would work now (say, the registry is back), but nothing happens without a retry.
    devices.bad.clear()
    stopped = threading.Event()
    stopped.wait(3)
    assert rollout(stack)["phase"] == "Halted"
    assert set(devices.failed) == failed
    assert all(tokens <= {0} for tokens in devices.tokens.values())

    patch_workload(stack, {"metadata": {"annotations": {RETRY_ROLLOUT_ANNOTATION: "1"}}})
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=60)
    done = rollout(stack)
    assert done["revision"] == 2  # the same revision, not a new rollout
    assert done["updatedDevices"] == 10
    assert done["retryRequest"] == "1"
    token = done["retry"]
    assert token > 0
    assert devices.failed == {}
    # The token went to the devices that had failed, and to no other.
    assert {name for name, tokens in devices.tokens.items() if tokens - {0}} == failed
    assert all(devices.tokens[name] - {0} == {token} for name in failed)
    assert "RolloutRetried" in events(stack)

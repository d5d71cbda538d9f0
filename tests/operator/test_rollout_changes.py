"""Rollouts across spec changes, through the operator, the local Kubernetes API and a real
Mosquitto with TLS, with devices that apply every desired state they get and report it over
MQTT, as the agent does. What each device got is read from what the broker delivered to it:

- a rollout superseded by a new change leaves its devices where they are until the new
  rollout's batches reach them; they are counted in those batches like every other device,
  never sent back to the stable revision meanwhile, and the completed rollout leaves no device
  on the superseded revision;
- a policy added in the same edit as a change rolls that change out in batches; a policy added
  alone starts nothing and sends nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.wire.desired import DesiredState
from tests.fixtures.brokers import ProbeFactory
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.builders import pod_spec, workload_obj
from tests.operator.conftest import NAMESPACE, Stack, wait_until
from tests.operator.mqtt_devices import MqttDevices, online_devices
from tests.operator.test_rollout_integration import MERGE, events, rollout

pytestmark = pytest.mark.slow

DEVICES = [f"d{i}" for i in range(10)]
POLICY = {"batches": [{"limit": 2}, {"limit": "50%"}], "successThreshold": "100%"}


class Devices(MqttDevices):
    """Each device applies every desired state it gets and reports it applied over MQTT;
    ``got[name]`` lists the image of the workload ``web`` in each desired state it got, in
    order ("" when the state had none)."""

    def __init__(self, probes: dict[str, MqttProbe]) -> None:
        super().__init__(probes)
        self.got: dict[str, list[str]] = {name: [] for name in probes}
        self._lock = threading.Lock()

    def take(self, name: str, desired: DesiredState) -> None:
        images = [
            w.pod_spec["containers"][0]["image"] for w in desired.workloads if w.name == "web"
        ]
        with self._lock:
            self.got[name].append(images[0] if images else "")
        self.report_applied(name, desired.version)

    def runs(self) -> dict[str, str]:
        """The image each device got last."""
        with self._lock:
            return {name: got[-1] if got else "" for name, got in self.got.items()}

    def since(self, marks: dict[str, int]) -> dict[str, list[str]]:
        """What each device got after ``marks`` (``counts()`` taken before)."""
        with self._lock:
            return {name: got[marks[name] :] for name, got in self.got.items()}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: len(got) for name, got in self.got.items()}


@pytest.fixture
def devices(stack: Stack, mqtt_probes: ProbeFactory) -> Iterator[Devices]:
    probes = online_devices(stack, mqtt_probes, DEVICES)
    with Devices(probes) as running:
        yield running


def create(stack: Stack, image: str, policy: dict[str, Any] | None) -> None:
    extra = {"rolloutPolicy": policy} if policy is not None else {}
    body = workload_obj(
        "web",
        NAMESPACE,
        selector={"matchLabels": {"app": "web"}},
        pod=pod_spec(image),
        extra_spec=extra,
    )
    stack.objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgeworkloads", body)


def change(stack: Stack, image: str | None = None, **policy: Any) -> None:
    spec: dict[str, Any] = {"rolloutPolicy": {**POLICY, "paused": False, **policy}}
    if image is not None:
        spec["pod"] = {"spec": pod_spec(image)}
    stack.objects.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "edgeworkloads", "web", {"spec": spec}, _content_type=MERGE
    )


def approve(stack: Stack, image: str) -> None:
    status = rollout(stack)
    change(stack, image, approval={"required": True, "revision": status["revision"], "batch": 3})


def on(devices: Devices, image: str) -> set[str]:
    return {name for name, runs in devices.runs().items() if runs == image}


def test_devices_a_superseded_rollout_reached_are_counted_in_the_next(
    stack: Stack, devices: Devices
) -> None:
    stack.start_operator()
    create(stack, "localhost/web:1", POLICY)
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30)
    wait_until(lambda: on(devices, "localhost/web:1") == set(DEVICES), timeout=30)

    # web:2 reaches its first batch and waits for an approval.
    change(stack, "localhost/web:2", approval={"required": True})
    wait_until(lambda: rollout(stack).get("phase") == "WaitingForApproval", timeout=30)
    wait_until(lambda: len(on(devices, "localhost/web:2")) == 2, timeout=30)
    on_two = on(devices, "localhost/web:2")
    second = rollout(stack)

    # web:3 supersedes it: a rollout from web:1 over all ten devices, web:2's among them.
    marks = devices.counts()
    change(stack, "localhost/web:3", approval={"required": True})
    wait_until(
        lambda: (
            rollout(stack).get("revision") == second["revision"] + 1
            and rollout(stack).get("phase") == "WaitingForApproval"
        ),
        timeout=30,
    )
    third = rollout(stack)
    assert third["stableRevisionName"] == second["stableRevisionName"]  # web:1's
    wait_until(lambda: len(on(devices, "localhost/web:3")) == 2, timeout=30)
    first_batch = on(devices, "localhost/web:3")
    wait_until(lambda: rollout(stack).get("updatedDevices") == 2, timeout=30)
    counted = rollout(stack)
    assert counted["targetedDevices"] == 10
    assert counted["batchDevices"] == 2
    assert counted["pendingDevices"] == 8  # web:2's devices outside batch 1 among them
    assert counted["updatingDevices"] == 0
    assert counted["failedDevices"] == 0
    # Only the batch got anything; web:2's other devices keep web:2 until a batch takes them.
    got = devices.since(marks)
    assert {name for name, images in got.items() if images} == first_batch
    assert on(devices, "localhost/web:2") == on_two - first_batch

    approve(stack, "localhost/web:3")
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30)
    assert rollout(stack)["updatedDevices"] == 10
    wait_until(lambda: on(devices, "localhost/web:3") == set(DEVICES), timeout=30)
    assert "BatchSucceeded" in events(stack)


def test_back_to_a_superseded_revision_its_devices_keep_it(stack: Stack, devices: Devices) -> None:
    stack.start_operator()
    create(stack, "localhost/web:1", POLICY)
    wait_until(lambda: on(devices, "localhost/web:1") == set(DEVICES), timeout=30)
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30)
    change(stack, "localhost/web:2", approval={"required": True})
    wait_until(lambda: len(on(devices, "localhost/web:2")) == 2, timeout=30)
    on_two = on(devices, "localhost/web:2")
    marks = devices.counts()
    change(stack, "localhost/web:3", paused=True)  # nobody gets web:3
    wait_until(lambda: rollout(stack).get("phase") == "Paused", timeout=30)
    # web:2 again: the same revision and the same order, so batch 1 is web:2's devices, which
    # run it healthy already; nobody was sent anything in between.
    change(stack, "localhost/web:2", approval={"required": True})
    wait_until(
        lambda: (
            rollout(stack).get("phase") == "WaitingForApproval"
            and rollout(stack).get("updatedDevices") == 2
        ),
        timeout=30,
    )
    assert devices.since(marks) == {name: [] for name in DEVICES}
    assert on(devices, "localhost/web:2") == on_two
    approve(stack, "localhost/web:2")
    wait_until(lambda: on(devices, "localhost/web:2") == set(DEVICES), timeout=30)
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30)


def test_a_policy_added_with_a_change_rolls_it_out_and_alone_starts_nothing(
    stack: Stack, devices: Devices
) -> None:
    stack.start_operator()
    create(stack, "localhost/web:1", None)
    wait_until(lambda: on(devices, "localhost/web:1") == set(DEVICES), timeout=30)

    # The policy alone: the current revision is the stable one; no device gets anything.
    marks = devices.counts()
    change(stack)
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30)
    alone = rollout(stack)
    assert alone["revision"] == 1
    assert alone["stableRevisionName"] == alone["revisionName"]
    assert "BatchStarted" not in events(stack)

    # The policy removed, then added again in the same edit as a new image: batches.
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        "web",
        {"spec": {"rolloutPolicy": None}},
        _content_type=MERGE,
    )
    wait_until(lambda: not rollout(stack), timeout=30)
    assert devices.since(marks) == {name: [] for name in DEVICES}
    change(stack, "localhost/web:2", approval={"required": True})
    wait_until(lambda: rollout(stack).get("phase") == "WaitingForApproval", timeout=30)
    added = rollout(stack)
    assert added["stableRevisionName"] == alone["revisionName"]  # web:1, where it starts
    assert added["currentBatch"] == 1
    wait_until(lambda: len(on(devices, "localhost/web:2")) == 2, timeout=30)
    assert len(on(devices, "localhost/web:1")) == 8
    approve(stack, "localhost/web:2")
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30)
    wait_until(lambda: on(devices, "localhost/web:2") == set(DEVICES), timeout=30)

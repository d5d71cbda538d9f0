"""Rollouts through the operator, the local Kubernetes API and a real Mosquitto, with devices
played by a stand-in bridge that reports what each device would: a good revision runs, a bad
one fails and rolls back. Revisions land in ControllerRevisions; a bad revision halts after
its first batch; a revert completes at once; a restarted operator goes on where it was."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION
from flotta.schemas.crd.common import MEMBER_OF_LABEL as MEMBER_OF
from tests.fixtures.kubetypes import obj
from tests.operator.builders import pod_spec, workload_obj
from tests.operator.conftest import NAMESPACE, Stack, add_device, patch_device_status, wait_until

pytestmark = pytest.mark.slow

MERGE = "application/merge-patch+json"
DEVICES = [f"d{i}" for i in range(10)]
POLICY = {"batches": [{"limit": 2}, {"limit": "50%"}], "successThreshold": "100%"}


def get(stack: Stack, plural: str, name: str) -> dict[str, Any]:
    return obj(stack.objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name))


def rollout(stack: Stack) -> dict[str, Any]:
    status: dict[str, Any] = (get(stack, "edgeworkloads", "web").get("status") or {}).get(
        "rollout"
    ) or {}
    return status


def told(stack: Stack, owner: str = "EdgeWorkload/web") -> dict[str, str]:
    out = {}
    for name in DEVICES:
        status = get(stack, "edgedevices", name).get("status") or {}
        out[name] = (status.get("desiredRevisions") or {}).get(owner, "")
    return out


class StandInDevices:
    """Plays the bridge for the devices: each runs what it was told, except the revisions
    listed in ``bad``, which it fails and rolls back from."""

    def __init__(self, stack: Stack, owner: str = "EdgeWorkload/web") -> None:
        self.stack = stack
        self.owner = owner
        self.bad: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StandInDevices:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            for name in DEVICES:
                try:
                    self._report(name)
                except client.exceptions.ApiException:
                    continue

    def _report(self, name: str) -> None:
        status = get(self.stack, "edgedevices", name).get("status") or {}
        desired = status.get("desiredVersion")
        if not desired or desired in (
            status.get("appliedVersion"),
            (status.get("failedVersion") or {}).get("version"),
        ):
            return
        revisions = status.get("desiredRevisions") or {}
        patch: dict[str, Any] = {"phase": "Online"}
        if set(revisions.values()) & self.bad:
            patch["failedVersion"] = {
                "version": desired,
                "reason": "container-exited",
                "workload": "web",
                "container": "main",
                "exitCode": 1,
                "message": "exec: not found",
                "time": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "rolledBack": True,
            }
        else:
            patch["appliedVersion"] = desired
        patch_device_status(self.stack, name, patch)


@pytest.fixture
def devices(stack: Stack) -> Iterator[StandInDevices]:
    with _devices(stack, {"app": "web"}) as stand_in:
        yield stand_in


@contextlib.contextmanager
def _devices(stack: Stack, labels: dict[str, str]) -> Iterator[StandInDevices]:
    owner = "EdgeWorkload/web" if "app" in labels else f"EdgeDeviceSet/{labels[MEMBER_OF]}"
    for name in DEVICES:
        add_device(stack, name, labels)
        patch_device_status(stack, name, {"phase": "Online"})
    with StandInDevices(stack, owner) as stand_in:
        yield stand_in


def set_image(stack: Stack, image: str, **policy: Any) -> None:
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        "web",
        {"spec": {"pod": {"spec": pod_spec(image)}, "rolloutPolicy": {**POLICY, **policy}}},
        _content_type=MERGE,
    )


def revisions(stack: Stack) -> dict[str, int]:
    apps = client.AppsV1Api(stack.api)
    listing = apps.list_namespaced_controller_revision(NAMESPACE, _preload_content=False)
    items = json.loads(listing.data)["items"]  # type: ignore[attr-defined]
    return {item["metadata"]["name"]: item["revision"] for item in items}


def events(stack: Stack) -> list[str]:
    listing = stack.core.list_namespaced_event(NAMESPACE)
    return [str(e.reason) for e in listing.items if e.involved_object.name == "web"]


def test_good_bad_revert_and_restart(stack: Stack, devices: StandInDevices) -> None:
    settings = replace(stack.config.settings, device_write_settle=0.2)
    operator = stack.start_operator(settings=settings)
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        workload_obj(
            "web",
            selector={"matchLabels": {"app": "web"}},
            pod=pod_spec("localhost/web:1"),
            extra_spec={"rolloutPolicy": POLICY},
        ),
    )
    # A new workload rolls out in batches too, from nothing.
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=60)
    first = rollout(stack)
    assert first["revision"] == 1
    assert first["updatedDevices"] == 10
    assert set(told(stack).values()) == {first["revisionName"]}
    assert revisions(stack) == {first["revisionName"]: 1}

    # A bad revision halts after its first batch of 2; nobody else ever gets it.
    set_image(stack, "localhost/web:broken")
    wait_until(lambda: rollout(stack).get("revision") == 2, timeout=30)
    bad = rollout(stack)["revisionName"]
    devices.bad.add(bad)
    wait_until(lambda: rollout(stack).get("phase") == "Halted", timeout=60)
    # with a threshold of 100 % the first failure halts; the other device of the batch reports
    wait_until(lambda: rollout(stack).get("failedDevices") == 2, timeout=30)
    halted = rollout(stack)
    assert halted["currentBatch"] == 1
    assert halted["failedDevices"] == 2
    assert {f["reason"] for f in halted["failures"]} == {"container-exited"}
    assert [f["workload"] for f in halted["failures"]] == ["web", "web"]
    assert sorted(told(stack).values()).count(bad) == 2
    assert "RolloutHalted" in events(stack)
    halted_condition = next(c for c in halted["conditions"] if c["type"] == "Halted")
    assert halted_condition["status"] == "True"
    assert operator.metric("flotta_operator_rollout_events_total", {"reason": "RolloutHalted"})

    # The GitOps revert: the stable revision again, complete at once, for every device.
    set_image(stack, "localhost/web:1")
    wait_until(lambda: set(told(stack).values()) == {first["revisionName"]}, timeout=60)
    assert rollout(stack)["phase"] == "Complete"

    # A good revision with approval; the operator restarts while it waits.
    set_image(stack, "localhost/web:3", approval={"required": True})
    wait_until(lambda: rollout(stack).get("phase") == "WaitingForApproval", timeout=60)
    waiting = rollout(stack)
    on_new = {n for n, r in told(stack).items() if r == waiting["revisionName"]}
    assert len(on_new) == 2
    operator.stop()
    restarted = stack.start_operator(settings=settings, identity="operator-b")
    wait_until(lambda: restarted.metric("flotta_operator_reconciles_total") >= 10, timeout=30)
    again = rollout(stack)
    assert again["phase"] == "WaitingForApproval"
    assert again["batchCutoffs"] == waiting["batchCutoffs"]
    assert {n for n, r in told(stack).items() if r == waiting["revisionName"]} == on_new
    set_image(
        stack,
        "localhost/web:3",
        approval={"required": True, "revision": waiting["revision"], "batch": 3},
    )
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=60)
    assert set(told(stack).values()) == {waiting["revisionName"]}
    assert bad in revisions(stack)  # kept in the history


def set_rollout(stack: Stack) -> dict[str, Any]:
    status = get(stack, "edgedevicesets", "line").get("status") or {}
    result: dict[str, Any] = status.get("rollout") or {}
    return result


def test_a_sets_configuration_rolls_out_in_batches(stack: Stack) -> None:
    """A set's first configuration applies at once; a change then goes batch by batch, and a
    configuration the members fail halts after the first batch."""
    settings = replace(stack.config.settings, device_write_settle=0.2)
    stack.start_operator(settings=settings)
    owner = "EdgeDeviceSet/line"

    def put_set(period: int, paused: bool = False) -> None:
        body = {
            "apiVersion": API_VERSION,
            "kind": "EdgeDeviceSet",
            "metadata": {"name": "line", "namespace": NAMESPACE},
            "spec": {
                "heartbeat": {"periodSeconds": period},
                "rolloutPolicy": {**POLICY, "paused": paused},
            },
        }
        try:
            stack.objects.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "edgedevicesets", body
            )
        except client.exceptions.ApiException:
            stack.objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NAMESPACE,
                "edgedevicesets",
                "line",
                {"spec": body["spec"]},
                _content_type=MERGE,
            )

    put_set(30)
    with _devices(stack, {MEMBER_OF: "line"}) as stand_in:
        wait_until(lambda: set_rollout(stack).get("phase") == "Complete", timeout=60)
        first = set_rollout(stack)
        wait_until(lambda: set(told(stack, owner).values()) == {first["revisionName"]}, timeout=60)
        put_set(20)
        wait_until(lambda: set_rollout(stack).get("revision") == 2, timeout=30)
        wait_until(lambda: set_rollout(stack).get("phase") == "Complete", timeout=60)
        second = set_rollout(stack)
        assert second["batches"] == 3
        put_set(15, paused=True)  # paused until the stand-in knows the revision is bad
        wait_until(lambda: set_rollout(stack).get("phase") == "Paused", timeout=30)
        assert set_rollout(stack)["revision"] == 3
        stand_in.bad.add(set_rollout(stack)["revisionName"])
        put_set(15)
        wait_until(lambda: set_rollout(stack).get("phase") == "Halted", timeout=60)
        halted = set_rollout(stack)
        assert halted["currentBatch"] == 1
        wait_until(
            lambda: list(told(stack, owner).values()).count(halted["revisionName"]) == 2,
            timeout=30,
        )
        assert list(told(stack, owner).values()).count(second["revisionName"]) == 8

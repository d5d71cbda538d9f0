"""Which revision each device gets, over the fleet caches without any server: a first
rollout from nothing, devices a superseded rollout reached keep its revision, joiners keep the
stable one, a revert completes at once, a re-roll of halted content gets new bytes, a
removed policy gives every device the current revision; a change touches only the devices
whose revision changes, and only a report that may move the rollout asks for an evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flotta.operator.fleet_cache import Fleet, Key
from flotta.operator.rendering import RenderedWorkload
from flotta.operator.rollout_revisions import RETRY_ANNOTATION
from flotta.operator.rollouts import Rollouts
from flotta.operator.version_reports import HeardVersions
from flotta.schemas.crd.workload import EdgeWorkload
from tests.operator.builders import device, workload, workload_obj

NS = "fleet"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = {"batches": [{"limit": 2}], "successThreshold": "100%"}


class World:
    """The caches, a clock, and devices that apply whatever they are given."""

    def __init__(self, count: int = 6) -> None:
        self.fleet = Fleet()
        self.now = T0
        self.told: dict[Key, dict[str, str]] = {}
        self.heard: dict[str, HeardVersions] = {}  # MQTT status reports
        self.rollouts = Rollouts(
            self.fleet,
            told=lambda key: self.told.get(key, {}),
            heard=self.heard.get,
            clock=lambda: self.now,
        )
        self.names = [f"d{i}" for i in range(count)]
        for name in self.names:
            self.fleet.apply_device(device(name, NS, labels={"app": "web"}))
        self.failing: set[str] = set()  # revision names the devices fail

    def put(self, image: str, policy: dict[str, Any] | None = POLICY) -> set[str]:
        """Apply the workload; the devices whose desired state its change touches."""
        extra = {"rolloutPolicy": policy} if policy is not None else {}
        model, pod = workload(
            "web",
            NS,
            selector={"matchLabels": {"app": "web"}},
            pod={"containers": [{"name": "m", "image": image}]},
            extra_spec=extra,
        )
        changes = self.fleet.apply_workload(model, pod)
        touched = {name for _, name in changes.devices - changes.content_only()}
        for key, names in changes.rendered.items():
            touched |= self.rollouts.changed(key, names)
        return touched

    def given(self, name: str) -> RenderedWorkload | None:
        """What the device's desired state carries of the workload now (and it reports)."""
        key = (NS, name)
        chosen, tags = self.rollouts.choose(key, self.fleet.workloads_of(key))
        self.told[key] = dict(t.split("=", 1) for t in tags)
        version = f"v-{name}-{tags}"
        self.rollouts.record(key, version, tags)
        revision = self.told[key].get("EdgeWorkload/web", "")
        status: dict[str, Any] = {"phase": "Online", "desiredVersion": version}
        if revision in self.failing:
            status["failedVersion"] = {"version": version, "reason": "container-exited"}
        else:
            status["appliedVersion"] = version
        self.fleet.apply_device(device(name, NS, labels={"app": "web"}, status=status))
        return chosen[0] if chosen else None

    def step(self) -> str:
        for name in self.names:
            self.given(name)
        evaluation = self.rollouts.evaluate((NS, "web"))
        self.now += timedelta(seconds=5)
        for name in self.names:
            self.given(name)
        return evaluation.phase if evaluation is not None else ""

    def images(self) -> dict[str, str]:
        out = {}
        for name in self.names:
            given = self.given(name)
            out[name] = given.workload.pod_spec["containers"][0]["image"] if given else ""
        return out

    def run(self, until: str, steps: int = 20) -> None:
        for _ in range(steps):
            if self.step() == until:
                return
        raise AssertionError(f"not {until} after {steps} steps")


def test_a_first_rollout_starts_from_nothing_and_completes() -> None:
    world = World()
    world.put("web:1")
    first = world.step()
    assert first == "Progressing"
    assert sorted(world.images().values()).count("web:1") == 2  # batch 1; the others: nothing
    world.run("Complete")
    assert set(world.images().values()) == {"web:1"}


def test_devices_keep_what_a_superseded_rollout_gave_them() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:2")
    world.step()
    on_two = {n for n, image in world.images().items() if image == "web:2"}
    assert len(on_two) == 2
    world.put("web:3", {**POLICY, "paused": True})  # a new revision, nobody admitted yet
    world.step()
    images = world.images()
    assert {n for n, image in images.items() if image == "web:2"} == on_two  # kept
    assert {image for n, image in images.items() if n not in on_two} == {"web:1"}  # stable


def test_a_device_that_joins_during_the_rollout_keeps_the_stable_revision() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:2", {**POLICY, "approval": {"required": True}})
    world.run("WaitingForApproval")
    world.names.append("late")
    world.fleet.apply_device(device("late", NS, labels={"app": "web"}))
    world.step()
    assert world.images()["late"] == "web:1"


def test_a_revert_completes_at_once_and_a_re_roll_of_halted_content_gets_new_bytes() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:bad")
    world.step()
    bad = world.rollouts.evaluate((NS, "web"))
    assert bad is not None
    assert bad.status is not None
    world.failing.add(bad.status["revisionName"])
    world.run("Halted")
    world.put("web:1")  # the GitOps revert
    assert world.step() == "Complete"
    assert set(world.images().values()) == {"web:1"}
    world.put("web:bad")  # the same content again: devices must not see the failed bytes
    world.step()
    retried = [g for n in world.names if (g := world.given(n)) is not None]
    annotated = [g for g in retried if RETRY_ANNOTATION in g.workload.annotations]
    assert len(annotated) == 2
    assert annotated[0].workload.annotations[RETRY_ANNOTATION] == "1"


def test_removing_the_policy_gives_everyone_the_current_revision() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:2", {**POLICY, "paused": True})
    world.step()
    world.put("web:2", None)
    evaluation = world.rollouts.evaluate((NS, "web"))
    assert evaluation is not None
    assert evaluation.status is None  # status.rollout is removed
    assert len(evaluation.reconcile) == len(world.names)
    assert set(world.images().values()) == {"web:2"}


def test_a_change_under_a_policy_touches_only_devices_whose_revision_changes() -> None:
    world = World()
    assert world.put("web:1", None) == set(world.names)  # no policy: every target
    world.images()
    assert world.put("web:2", None) == set(world.names)
    world.images()
    world.put("web:2")  # the policy alone: nothing to roll out
    assert world.step() == "Complete"
    assert world.put("web:3") == set()  # a new rollout: nobody admitted yet
    world.step()
    on_three = {n for n, image in world.images().items() if image == "web:3"}
    assert len(on_three) == 2
    assert world.put("web:4", {**POLICY, "paused": True}) == set()  # everyone keeps theirs
    world.step()
    assert world.put("web:2") == on_three  # the revert: the devices not on web:2 already
    assert set(world.images().values()) == {"web:2"}


def test_only_a_report_that_may_move_the_rollout_asks_for_an_evaluation() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:2")
    evaluation = world.rollouts.evaluate((NS, "web"))
    assert evaluation is not None
    batch = sorted(name for _, name in evaluation.reconcile)
    assert len(batch) == 2
    outside = next(name for name in world.names if name not in batch)
    versions = {}
    for name in world.names:  # the operator assembles their desired states; nobody reports
        key = (NS, name)
        _, tags = world.rollouts.choose(key, world.fleet.workloads_of(key))
        versions[name] = f"v-{name}-{tags}"
        world.rollouts.record(key, versions[name], tags)

    def report(name: str) -> bool:
        world.heard[name] = HeardVersions(world.now, applied=versions[name])
        return world.rollouts.heard_from(name)

    assert not report(outside)  # not in the batch
    assert not report(batch[0])  # 1 of 2, 100 % needed
    assert world.rollouts.take_due() == []
    assert report(batch[1])  # the batch is through
    assert world.rollouts.take_due() == [("EdgeWorkload", (NS, "web"))]
    evaluation = world.rollouts.evaluate((NS, "web"))
    assert evaluation is not None
    assert evaluation.status is not None
    assert evaluation.status["currentBatch"] == 2  # the reports alone moved it


def test_a_device_a_superseded_rollout_reached_is_one_more_device_to_update() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:2")
    world.step()
    on_two = {n for n, image in world.images().items() if image == "web:2"}
    world.put("web:3", {**POLICY, "paused": True})
    world.step()
    # Back to web:2: its devices keep it (never sent back to web:1 meanwhile) and are
    # counted in the batches like the others; the same seed puts them in batch 1 again.
    assert world.put("web:2", {**POLICY, "paused": True}) == set()
    evaluation = world.rollouts.evaluate((NS, "web"))
    assert evaluation is not None
    assert evaluation.status is not None
    assert evaluation.status["pendingDevices"] == 6
    assert evaluation.status["updatedDevices"] == 0
    assert {n for n, image in world.images().items() if image == "web:2"} == on_two
    world.put("web:2")
    evaluation = world.rollouts.evaluate((NS, "web"))
    assert evaluation is not None
    assert evaluation.status is not None
    assert evaluation.reconcile == set()  # batch 1: on_two, nothing to send them
    evaluation = world.rollouts.evaluate((NS, "web"))  # they run it healthy already
    assert evaluation is not None
    assert evaluation.status is not None
    assert evaluation.status["currentBatch"] == 2
    assert evaluation.status["updatedDevices"] == 2
    world.run("Complete")
    assert set(world.images().values()) == {"web:2"}


def test_a_revision_a_device_still_runs_is_never_pruned() -> None:
    world = World()
    world.put("web:1")
    world.run("Complete")
    world.put("web:2")
    world.step()
    second = world.rollouts.evaluate((NS, "web"))
    assert second is not None
    assert second.status is not None
    on_two = {n for n, image in world.images().items() if image == "web:2"}
    deleted: set[str] = set()
    for i in range(3, 16):  # superseded before anybody got them
        world.put(f"web:{i}", {**POLICY, "paused": True})
        evaluation = world.rollouts.evaluate((NS, "web"))
        assert evaluation is not None
        deleted |= set(evaluation.delete)
    assert len(deleted) >= 2
    assert second.status["revisionName"] not in deleted
    assert {n for n, image in world.images().items() if image == "web:2"} == on_two


def test_a_policy_added_with_a_change_rolls_the_change_out() -> None:
    world = World()
    world.put("web:1", None)
    assert set(world.images().values()) == {"web:1"}
    world.put("web:2")  # the policy and a new image in one edit
    assert world.step() == "Progressing"
    assert sorted(world.images().values()) == ["web:1"] * 4 + ["web:2"] * 2
    world.run("Complete")
    assert set(world.images().values()) == {"web:2"}


def test_a_workload_created_again_with_a_policy_rolls_out_from_nothing() -> None:
    world = World()

    def create(uid: str, image: str, extra: dict[str, Any]) -> None:
        pod = {"containers": [{"name": "m", "image": image}]}
        obj = workload_obj("web", NS, selector={"matchLabels": {"app": "web"}}, pod=pod)
        obj["metadata"]["uid"] = uid
        obj["spec"].update(extra)
        world.fleet.apply_workload(EdgeWorkload.model_validate(obj), pod)

    create("first", "web:1", {})
    assert set(world.images().values()) == {"web:1"}
    world.fleet.delete_workload((NS, "web"))
    create("second", "web:2", {"rolloutPolicy": POLICY})  # not what the devices ran
    assert world.step() == "Progressing"
    assert sorted(world.images().values()) == [""] * 4 + ["web:2"] * 2

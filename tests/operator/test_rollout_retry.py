"""Retrying a rollout without changing its spec, over the fleet caches without any server: a
new value of the annotation flotta.io/retry-rollout gives the devices that failed the revision
a retry token (and no other device), their earlier failures count as past, and a halted rollout
goes on; a device that fails again under the token halts it again; an annotation left from
before starts nothing; an operator that starts again does not retry twice. The token travels
in the payload outside the version, and the ledger publishes it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flotta.operator.assembly import Assembled, assemble, render_configuration
from flotta.operator.desired import DesiredStates
from flotta.operator.fleet_cache import Fleet, Key
from flotta.operator.ledger import Ledger
from flotta.operator.rendering import RenderedWorkload, render_workload
from flotta.operator.rollout_revisions import SET_KIND
from flotta.operator.rollouts import Evaluation, Rollouts
from flotta.schemas.codec import content_version, decode, encode
from flotta.schemas.crd.common import MEMBER_OF_LABEL
from flotta.schemas.crd.rollout import RETRY_ROLLOUT_ANNOTATION
from flotta.schemas.wire.desired import DesiredConfiguration, DesiredState, SealedData
from tests.operator.builders import device, device_set, pod_spec, workload
from tests.operator.test_rollouts import NS, POLICY, T0, World


class RetryWorld(World):
    """Devices that act as the agent does with retry tokens: a failed version is applied
    again only under a greater token."""

    def __init__(self, count: int = 6) -> None:
        super().__init__(count)
        self.tokens: dict[str, int] = {}  # the token each device was given last
        self.failed: dict[str, tuple[str, int]] = {}  # device -> (version, token) it failed
        self.request = ""
        self.bad_images: set[str] = set()  # images the devices fail

    def put(self, image: str, policy: dict[str, Any] | None = POLICY) -> set[str]:
        extra = {"rolloutPolicy": policy} if policy is not None else {}
        annotations = {RETRY_ROLLOUT_ANNOTATION: self.request} if self.request else {}
        model, pod = workload(
            "web",
            NS,
            selector={"matchLabels": {"app": "web"}},
            pod={"containers": [{"name": "m", "image": image}]},
            extra_spec=extra,
            annotations=annotations,
        )
        return {name for _, name in self.fleet.apply_workload(model, pod).devices}

    def given(self, name: str) -> RenderedWorkload | None:
        key = (NS, name)
        chosen, tags = self.rollouts.choose(key, self.fleet.workloads_of(key))
        self.told[key] = dict(t.split("=", 1) for t in tags)
        version = f"v-{name}-{tags}"
        token = self.rollouts.retry_token(key, tags)
        self.tokens[name] = token
        self.rollouts.record(key, version, tags)
        image = chosen[0].workload.pod_spec["containers"][0]["image"] if chosen else ""
        failed = self.failed.get(name)
        status: dict[str, Any] = {
            "phase": "Online",
            "desiredVersion": version,
            "desiredRevisions": self.told[key],  # as the operator writes them
        }
        if failed is not None and failed[0] == version and token <= failed[1]:
            pass  # not applied again
        elif image in self.bad_images:
            self.failed[name] = (version, token)
        else:
            self.failed.pop(name, None)
            status["appliedVersion"] = version
        if name in self.failed:
            failed_version, failed_token = self.failed[name]
            status["failedVersion"] = {
                "version": failed_version,
                "reason": "container-exited",
                "rolledBack": True,
                "retry": failed_token,
            }
        self.fleet.apply_device(device(name, NS, labels={"app": "web"}, status=status))
        return chosen[0] if chosen else None

    def evaluate(self) -> Evaluation:
        evaluation = self.rollouts.evaluate((NS, "web"))
        assert evaluation is not None
        assert evaluation.status is not None
        return evaluation


def halted_on_a_bad_revision() -> tuple[RetryWorld, str]:
    world = RetryWorld()
    world.put("web:1")
    world.run("Complete")
    world.bad_images.add("web:bad")
    world.put("web:bad")
    world.run("Halted")
    bad = world.evaluate().status
    assert bad is not None
    return world, bad["revisionName"]


def reasons(evaluation: Evaluation) -> list[str]:
    return [reason for _, reason, _ in evaluation.events]


def test_a_retry_gives_the_failed_devices_a_token_and_the_rollout_goes_on() -> None:
    world, _ = halted_on_a_bad_revision()
    halted = world.evaluate()
    assert halted.status is not None
    assert halted.status["failedDevices"] == 2
    failed = set(world.failed)
    assert len(failed) == 2
    assert set(world.tokens.values()) == {0}
    # Fixed meanwhile (say, the registry): without a retry nothing changes.
    world.bad_images.clear()
    assert world.step() == "Halted"
    assert set(world.failed) == failed

    world.request = "1"
    world.put("web:bad")  # the same spec, annotated
    retried = world.evaluate()
    assert retried.status is not None
    assert "RolloutRetried" in reasons(retried)
    assert retried.reconcile == {(NS, name) for name in failed}
    token = retried.status["retry"]
    assert token > 0
    assert retried.status["retryRequest"] == "1"
    # The failures were reported before the retry: the devices count as updating again.
    assert (retried.phase, retried.status["failedDevices"]) == ("Progressing", 0)
    assert retried.status["updatingDevices"] == 2
    for name in world.names:
        world.given(name)
    assert {n for n, t in world.tokens.items() if t} == failed
    assert {world.tokens[n] for n in failed} == {token}
    world.run("Complete")
    assert set(world.images().values()) == {"web:bad"}
    assert world.failed == {}
    assert set(world.tokens.values()) == {0}  # healthy now: no token any more
    assert "RolloutRetried" not in reasons(world.evaluate())  # once per annotation value


def test_a_device_that_fails_again_under_the_token_halts_the_rollout_again() -> None:
    world, _ = halted_on_a_bad_revision()
    world.request = "first"
    world.put("web:bad")
    first = world.evaluate()
    assert first.phase == "Progressing"
    world.run("Halted")  # they try again and fail again
    again = world.evaluate()
    assert again.status is not None
    assert again.status["failedDevices"] == 2
    token = again.status["retry"]
    assert {t for t in world.failed.values()} == {(v, token) for v, _ in world.failed.values()}
    world.request = "second"
    world.put("web:bad")
    second = world.evaluate()
    assert second.status is not None
    assert second.status["retry"] > token
    assert second.phase == "Progressing"


def test_an_annotation_left_from_before_retries_nothing() -> None:
    world = RetryWorld()
    world.request = "old"
    world.put("web:1")
    world.run("Complete")
    world.put("web:2")  # a new rollout, with the annotation as it was
    evaluation = world.evaluate()
    assert "RolloutRetried" not in reasons(evaluation)
    assert evaluation.status is not None
    assert evaluation.status["retry"] is None
    world.run("Complete")
    world.request = "new"  # a retry of a complete rollout nobody failed: nothing to do
    world.put("web:2")
    done = world.evaluate()
    assert "RolloutRetried" in reasons(done)
    assert done.reconcile == set()
    assert done.phase == "Complete"


def test_an_operator_that_starts_again_does_not_retry_again() -> None:
    world, _ = halted_on_a_bad_revision()
    world.request = "1"
    world.put("web:bad")
    retried = world.evaluate()
    assert retried.status is not None
    # A new operator: the workload carries the status the first one wrote.
    model, pod = workload(
        "web",
        NS,
        selector={"matchLabels": {"app": "web"}},
        pod={"containers": [{"name": "m", "image": "web:bad"}]},
        extra_spec={"rolloutPolicy": POLICY},
        annotations={RETRY_ROLLOUT_ANNOTATION: "1"},
    )
    obj = model.to_api()
    obj["status"] = {"rollout": retried.status, "observedGeneration": 1}
    model = type(model).model_validate(obj)
    world.fleet.apply_workload(model, pod)
    restarted = Rollouts(
        world.fleet, told=lambda key: world.told.get(key, {}), clock=lambda: world.now
    )
    kept = (
        world.rollouts.revision(NS, retried.status[k])
        for k in ("revisionName", "stableRevisionName")
    )
    restarted.load_revisions(r for r in kept if r is not None)  # its ControllerRevisions
    world.rollouts = restarted
    evaluation = world.evaluate()
    assert "RolloutRetried" not in reasons(evaluation)
    assert evaluation.status is not None
    assert evaluation.status["retry"] == retried.status["retry"]
    assert evaluation.phase == "Progressing"
    key: Key = (NS, next(iter(world.failed)))
    assert restarted.retry_token(key, tuple(f"{k}={v}" for k, v in world.told[key].items()))


def test_a_retry_token_is_published_without_changing_the_version() -> None:
    configuration = render_configuration(DesiredConfiguration())
    web = render_workload(
        *workload("web", NS, pod=pod_spec("web:1")), secrets=lambda _: None, configmaps=no_maps
    )
    assert isinstance(web, RenderedWorkload)

    def assembled(retry: int) -> Assembled:
        return assemble(
            "d1",
            NS,
            configuration,
            [web],
            secrets=lambda _: None,
            public_key=None,
            seal=no_seal,
            retry=retry,
        )

    plain, retried = assembled(0), assembled(1700000000)
    assert retried.version == plain.version
    state = decode(DesiredState, retried.payload)
    assert state.retry == 1700000000
    assert encode(state) == retried.payload  # as the codec writes it
    assert content_version(state) == plain.version
    assert b'"retry"' not in plain.payload
    # The ledger publishes again for the token alone, and its acknowledgement settles it.
    ledger = Ledger()
    key = (NS, "d1")
    assert ledger.update(key, plain.version, plain.payload, 60)
    started = ledger.start(key)
    assert started is not None
    assert not ledger.acknowledged(key, started[0])
    assert ledger.update(key, retried.version, retried.payload, 60, retry=retried.retry)
    mark, payload = ledger.start(key) or ("", b"")
    assert payload == retried.payload
    assert not ledger.acknowledged(key, mark)
    assert ledger.unpublished() == []
    assert not ledger.update(key, retried.version, retried.payload, 60, retry=retried.retry)
    assert not ledger.announced(key, plain.version)  # the device runs this version


def no_maps(_: str) -> None:
    return None


def no_seal(*_: object) -> SealedData:
    raise AssertionError("nothing to seal")


class SetWorld:
    """An EdgeDeviceSet with a rollout policy and members that act on retry tokens."""

    def __init__(self, count: int = 4) -> None:
        self.fleet = Fleet()
        self.now = T0
        self.told: dict[Key, dict[str, str]] = {}
        self.rollouts = Rollouts(
            self.fleet, told=lambda key: self.told.get(key, {}), clock=lambda: self.now
        )
        self.names = [f"m{i}" for i in range(count)]
        self.bad_periods: set[int] = set()
        self.failed: dict[str, tuple[str, int]] = {}
        self.tokens: dict[str, int] = {}
        self.desired = DesiredStates(
            self.fleet, seal=no_seal, public_key=lambda _: None, rollouts=self.rollouts
        )
        for name in self.names:
            self.report(name, {})

    def report(self, name: str, status: dict[str, Any]) -> None:
        labels = {MEMBER_OF_LABEL: "line"}
        self.fleet.apply_device(device(name, NS, labels=labels, status=status or None))

    def put(self, period: int, request: str = "") -> None:
        model = device_set(
            "line", NS, {"heartbeat": {"periodSeconds": period}, "rolloutPolicy": POLICY}
        )
        if request:
            model.metadata.annotations[RETRY_ROLLOUT_ANNOTATION] = request
        self.fleet.apply_set(model)

    def step(self) -> str:
        evaluation = self.rollouts.evaluate((NS, "line"), SET_KIND)
        assert evaluation is not None
        self.now += timedelta(seconds=5)
        for name in self.names:
            key = (NS, name)
            built = self.desired.build(key)
            self.rollouts.record(key, built.version, built.revisions)
            self.told[key] = dict(t.split("=", 1) for t in built.revisions)
            self.tokens[name] = built.retry
            state = decode(DesiredState, built.payload)
            failed = self.failed.get(name)
            status: dict[str, Any] = {
                "phase": "Online",
                "desiredVersion": built.version,
                "desiredRevisions": self.told[key],
            }
            if failed is not None and failed[0] == built.version and built.retry <= failed[1]:
                pass
            elif state.configuration.heartbeat.period_seconds in self.bad_periods:
                self.failed[name] = (built.version, built.retry)
            else:
                self.failed.pop(name, None)
                status["appliedVersion"] = built.version
            if name in self.failed:
                version, token = self.failed[name]
                status["failedVersion"] = {
                    "version": version,
                    "reason": "apply-failed",
                    "rolledBack": True,
                    "retry": token,
                }
            self.report(name, status)
        return evaluation.phase

    def run(self, until: str) -> None:
        for _ in range(20):
            if self.step() == until:
                return
        raise AssertionError(f"not {until}")


def test_a_sets_configuration_is_retried_unchanged_and_a_re_roll_retries_by_itself() -> None:
    world = SetWorld()
    world.put(30)
    world.run("Complete")
    world.bad_periods.add(20)
    world.put(20)
    world.run("Halted")
    failed = set(world.failed)
    assert len(failed) == 2
    world.bad_periods.clear()
    world.put(20, request="again")  # the same configuration, retried
    world.run("Complete")
    assert world.failed == {}
    assert {name for name, token in world.tokens.items() if token} <= failed
    # Halted again, reverted, then rolled out again unchanged: a token without being asked.
    world.bad_periods.add(15)
    world.put(15, request="again")
    world.run("Halted")
    world.put(20, request="again")
    world.run("Complete")  # the revert
    world.bad_periods.clear()
    world.put(15, request="again")
    world.step()
    evaluation = world.rollouts.evaluate((NS, "line"), SET_KIND)
    assert evaluation is not None
    assert evaluation.status is not None
    assert evaluation.status["retry"] > 0
    world.run("Complete")
    assert world.failed == {}

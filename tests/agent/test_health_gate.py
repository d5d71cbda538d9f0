"""The health gate and the transaction's next step, without Podman: pure decisions."""

from datetime import UTC, datetime

import pytest

from flotta.agent.health_gate import GateWatch, gates_for
from flotta.agent.probe_schedule import ProbeResult
from flotta.agent.rollout_journal import RolloutRecord, Transaction, next_step
from flotta.agent.runtime import ContainerHealth
from flotta.schemas.probes import Exec, HttpGet, Probe
from flotta.schemas.wire import HealthGate, VersionFailure

GATE = HealthGate(stabilization_seconds=5, timeout_seconds=30)
STARTED = "2026-12-07T10:00:00Z"


def container(**changes: object) -> ContainerHealth:
    values: dict[str, object] = {
        "name": "app",
        "container_id": "c1",
        "state": "running",
        "exit_code": 0,
        "restart_count": 0,
        "started_at": STARTED,
        "running_for": 10.0,
    }
    values.update(changes)
    return ContainerHealth(**values)  # type: ignore[arg-type]


def test_running_past_the_stabilisation_is_healthy() -> None:
    watch = GateWatch({"web": GATE})
    assert not watch.verdict({"web": [container(running_for=4.0)]}, 4.0).healthy
    assert watch.verdict({"web": [container(running_for=5.0)]}, 5.0).healthy


def test_no_pod_yet_waits_then_times_out() -> None:
    watch = GateWatch({"web": GATE})
    verdict = watch.verdict({"web": None}, 10.0)
    assert verdict.failure is None
    assert "no pod" in verdict.waiting_for
    failure = watch.verdict({"web": None}, 30.0).failure
    assert failure is not None
    assert (failure.reason, failure.workload) == ("timed-out", "web")


def test_exit_and_restart_fail_at_once() -> None:
    watch = GateWatch({"web": GATE})
    exited = watch.verdict({"web": [container(state="exited", exit_code=3)]}, 1.0).failure
    assert exited is not None
    assert (exited.reason, exited.container, exited.exit_code) == ("container-exited", "app", 3)
    looping = watch.verdict({"web": [container(restart_count=2, exit_code=1)]}, 1.0).failure
    assert looping is not None
    assert looping.reason == "crash-loop"


def test_a_new_start_time_is_a_restart() -> None:
    watch = GateWatch({"web": GATE})
    assert watch.verdict({"web": [container()]}, 1.0).failure is None
    failure = watch.verdict({"web": [container(started_at="2026-12-07T10:00:09Z")]}, 2.0).failure
    assert failure is not None
    assert failure.reason == "crash-loop"


def test_a_completed_container_counts_as_healthy_unless_it_should_run_always() -> None:
    watch = GateWatch({"job": GATE})
    for policy in ("Never", "OnFailure"):
        done = container(state="exited", exit_code=0, restart_policy=policy)
        assert watch.verdict({"job": [done]}, 1.0).healthy
    stopped = container(state="exited", exit_code=0, restart_policy="Always")
    failure = watch.verdict({"job": [stopped]}, 1.0).failure
    assert failure is not None
    assert failure.reason == "container-exited"
    assert "restartPolicy Always" in failure.message


LIVENESS = Probe("app", "liveness", Exec(("cat", "/tmp/ok")), period=2, failure_threshold=2)
READINESS = Probe("app", "readiness", HttpGet(8080, "/ready"), period=1, success_threshold=2)


def test_probes_run_at_their_period_and_gate_the_workload() -> None:
    watch = GateWatch({"web": GATE}, {"web": {"app": (LIVENESS, READINESS)}})
    app = container()
    assert watch.probes_due("web", [app], 0.0) == [(app, READINESS), (app, LIVENESS)]
    watch.probed("c1", LIVENESS, None, 0.0)  # could not run: tried again a period later
    watch.probed("c1", READINESS, ProbeResult(True, "HTTP 200 OK"), 0.0)
    assert watch.probes_due("web", [app], 1.0) == [(app, READINESS)]
    waiting = watch.verdict({"web": [app]}, 1.0).waiting_for
    assert "not ready: readiness probe (HTTP GET :8080/ready) succeeded 1 of 2 times" in waiting
    watch.probed("c1", READINESS, ProbeResult(True), 1.0)
    waiting = watch.verdict({"web": [app]}, 1.0).waiting_for
    assert "liveness probe (exec cat /tmp/ok) has not run yet" in waiting
    assert watch.probes_due("web", [app], 2.0) == [(app, READINESS), (app, LIVENESS)]
    watch.probed("c1", LIVENESS, ProbeResult(True), 2.0)
    assert watch.verdict({"web": [app]}, 2.0).healthy


def test_a_liveness_probe_fails_the_container_after_its_threshold() -> None:
    watch = GateWatch({"web": GATE}, {"web": {"app": (LIVENESS,)}})
    app = container()
    watch.probes_due("web", [app], 0.0)
    watch.probed("c1", LIVENESS, ProbeResult(True), 0.0)
    watch.probed("c1", LIVENESS, ProbeResult(False, "exit code 1: no /tmp/ok"), 2.0)
    verdict = watch.verdict({"web": [app]}, 2.0)
    assert (verdict.healthy, verdict.failure) == (False, None)  # 1 of 2: alive, not passing
    watch.probed("c1", LIVENESS, ProbeResult(False, "exit code 1: no /tmp/ok"), 4.0)
    failure = watch.verdict({"web": [app]}, 4.0).failure
    assert failure is not None
    assert (failure.reason, failure.workload, failure.container) == (
        "health-check-failed",
        "web",
        "app",
    )
    assert failure.message == (
        "container app: liveness probe (exec cat /tmp/ok) failed 2 times in a row: "
        "exit code 1: no /tmp/ok"
    )


def test_a_readiness_probe_that_never_passes_times_out_with_its_answer() -> None:
    watch = GateWatch({"web": GATE}, {"web": {"app": (READINESS,)}})
    app = container()
    for second in range(30):
        watch.probes_due("web", [app], float(second))
        watch.probed("c1", READINESS, ProbeResult(False, "HTTP 503 Service Unavailable"), second)
        assert watch.verdict({"web": [app]}, float(second)).failure is None
    failure = watch.verdict({"web": [app]}, 30.0).failure
    assert failure is not None
    assert failure.reason == "timed-out"
    assert "failed 30 times in a row: HTTP 503 Service Unavailable" in failure.message


def test_probes_of_stopped_containers_and_of_other_containers_do_not_run() -> None:
    watch = GateWatch({"web": GATE}, {"web": {"side": (LIVENESS,)}})
    assert watch.probes_due("web", [container()], 0.0) == []
    assert watch.verdict({"web": [container()]}, 5.0).healthy
    watched = GateWatch({"web": GATE}, {"web": {"app": (LIVENESS,)}})
    assert watched.probes_due("web", [container(state="paused")], 0.0) == []


def test_per_workload_gates_override_the_default() -> None:
    own = HealthGate(stabilization_seconds=0)
    assert gates_for(["a", "b"], {"a": own, "b": None}, GATE) == {"a": own, "b": GATE}


FAILED = VersionFailure(version="v2", reason="crash-loop", time=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("desired", "record", "window_open", "step"),
    [
        ("v1", RolloutRecord(), False, "keep"),  # the good one
        ("v2", RolloutRecord(), True, "apply"),
        ("v2", RolloutRecord(), False, "wait"),
        ("v2", RolloutRecord(failed=FAILED), True, "keep"),  # never again
        ("v3", RolloutRecord(failed=FAILED), True, "apply"),  # a newer one is applied
        ("v2", RolloutRecord(transaction=Transaction(version="v2")), False, "apply"),
        ("v3", RolloutRecord(transaction=Transaction(version="v2")), False, "wait"),
        ("v1", RolloutRecord(transaction=Transaction(version="v2")), True, "keep"),
        (
            "v3",
            RolloutRecord(
                transaction=Transaction(version="v2", phase="rolling-back", failure=FAILED)
            ),
            True,
            "rollback",
        ),
    ],
)
def test_next_step(desired: str, record: RolloutRecord, window_open: bool, step: str) -> None:
    assert next_step(desired, "v1", record, window_open=window_open) == step

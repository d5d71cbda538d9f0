"""The health gate and the transaction's next step, without Podman: pure decisions."""

from datetime import UTC, datetime

import pytest

from flotta.agent.health_gate import GateWatch, gates_for
from flotta.agent.rollout_journal import RolloutRecord, Transaction, next_step
from flotta.agent.runtime import ContainerHealth
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


def test_health_checks_run_at_their_period_and_pass() -> None:
    watch = GateWatch({"web": GATE})
    probed = container(probe_interval=2.0, probe_retries=2)
    assert watch.probes_due([probed], 0.0) == ["c1"]
    watch.probed("c1", None, 0.0)  # could not run
    assert watch.probes_due([probed], 1.0) == []
    assert watch.probes_due([probed], 2.0) == ["c1"]
    assert watch.verdict({"web": [probed]}, 6.0).waiting_for.endswith("not passed yet")
    watch.probed("c1", True, 2.0)
    assert watch.verdict({"web": [probed]}, 6.0).healthy
    watch.probed("c1", False, 4.0)  # a failure Podman has not counted to its retries yet
    failing = container(probe_interval=2.0, probe_retries=2, probe_failing_streak=1)
    verdict = watch.verdict({"web": [failing]}, 6.0)
    assert (verdict.healthy, verdict.failure) == (False, None)
    watch.probed("c1", True, 6.0)
    assert watch.verdict({"web": [probed]}, 6.0).healthy


def test_a_failing_check_counts_as_podman_counts_it() -> None:
    """Failures in the start period are not counted (streak 0): the gate waits, then times
    out with the probe's output; at ``retries`` counted failures it fails, whatever Podman
    did to the container then (stopped it, restarted it)."""
    watch = GateWatch({"web": GATE})
    starting = container(
        probe_interval=1.0, probe_retries=2, probe_output="no /tmp/ok", probe_exit_code=1
    )
    watch.probed("c1", False, 1.0)
    assert watch.verdict({"web": [starting]}, 5.0).failure is None
    timed_out = watch.verdict({"web": [starting]}, 30.0).failure
    assert timed_out is not None
    assert timed_out.reason == "timed-out"
    assert "no /tmp/ok" in timed_out.message
    for after in (
        {"state": "running"},
        {"state": "exited", "exit_code": 0},  # stopped by Podman's on-failure action
        {"state": "exited", "exit_code": 137},
        {"started_at": "2026-12-07T10:00:09Z"},  # restarted by it
    ):
        failed = container(
            probe_interval=1.0,
            probe_retries=2,
            probe_failing_streak=2,
            probe_output="no /tmp/ok",
            probe_exit_code=1,
            **after,
        )
        failure = GateWatch({"web": GATE}).verdict({"web": [failed]}, 5.0).failure
        assert failure is not None, after
        assert failure.reason == "health-check-failed", after
        assert "2 times in a row" in failure.message
        assert "no /tmp/ok" in failure.message


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

"""When probes run and what their results add up to, as Kubernetes has it. Pure."""

from flotta.agent.probe_schedule import ContainerProbes, ProbeResult
from flotta.schemas.probes import Exec, Probe, TcpSocket

OK, NO = ProbeResult(True), ProbeResult(False, "connection refused")
STARTUP = Probe("app", "startup", Exec(("cat", "/tmp/up")), period=2, failure_threshold=3)
READINESS = Probe(
    "app", "readiness", TcpSocket(80), period=1, success_threshold=2, failure_threshold=2
)
LIVENESS = Probe("app", "liveness", TcpSocket(80), initial_delay=5, period=1)


def test_nothing_but_the_startup_probe_runs_until_it_passed_then_it_runs_no_more() -> None:
    probes = ContainerProbes([LIVENESS, READINESS, STARTUP])
    assert probes.due(running_for=0.0, now=0.0) == [STARTUP]
    probes.record(STARTUP, NO, 0.0)
    assert probes.due(running_for=1.0, now=1.0) == []
    assert probes.waiting_for().startswith("startup probe (exec cat /tmp/up) failed 1 times")
    assert probes.due(running_for=2.0, now=2.0) == [STARTUP]
    probes.record(STARTUP, OK, 2.0)
    # the liveness probe waits for its initial delay, counted from the container's start
    assert probes.due(running_for=2.5, now=2.5) == [READINESS]
    assert probes.due(running_for=5.0, now=5.0) == [READINESS, LIVENESS]
    assert probes.failure() is None


def test_a_startup_probe_that_keeps_failing_fails_the_container() -> None:
    probes = ContainerProbes([STARTUP, LIVENESS])
    for second in (0.0, 2.0, 4.0):
        assert probes.failure() is None
        assert probes.due(running_for=second, now=second) == [STARTUP]
        probes.record(STARTUP, NO, second)
    failed = probes.failure()
    assert failed is not None
    assert failed.describe() == (
        "startup probe (exec cat /tmp/up) failed 3 times in a row: connection refused"
    )


def test_readiness_needs_its_successes_in_a_row_and_goes_after_its_failures() -> None:
    probes = ContainerProbes([READINESS])
    steps = [
        (OK, False),
        (NO, False),
        (OK, False),
        (OK, True),
        (NO, True),
        (NO, False),
        (OK, False),
    ]
    for second, (result, ready) in enumerate(steps):
        probes.record(READINESS, result, float(second))
        assert (probes.waiting_for() == "") is ready, second
    assert probes.failure() is None  # readiness never fails the container


def test_liveness_counts_while_its_latest_run_succeeded_and_fails_at_its_threshold() -> None:
    probes = ContainerProbes([LIVENESS])
    assert probes.waiting_for() == "liveness probe (TCP :80) has not run yet"
    probes.record(LIVENESS, OK, 5.0)
    assert probes.waiting_for() == ""
    probes.record(LIVENESS, NO, 6.0)
    assert "failed 1 times in a row: connection refused" in probes.waiting_for()
    probes.record(LIVENESS, OK, 7.0)
    assert probes.failure() is None
    for second in (8.0, 9.0, 10.0):
        probes.record(LIVENESS, NO, second)
    assert probes.failure() is not None


def test_a_probe_that_could_not_run_waits_its_period_and_counts_nothing() -> None:
    probes = ContainerProbes([READINESS])
    probes.record(READINESS, None, 0.0)
    assert probes.due(running_for=0.5, now=0.5) == []
    assert probes.due(running_for=1.0, now=1.0) == [READINESS]
    assert probes.states["readiness"].failures == 0
    probes.record(Probe("other", "readiness", TcpSocket(1)), NO, 1.0)  # not this container's
    assert probes.states["readiness"].last is None

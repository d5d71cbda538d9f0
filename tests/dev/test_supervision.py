"""The stack's supervisor: a process that ends is started again (same command, same added
environment), with a delay that doubles and starts over once the process stays up."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from flotta.dev.stack import processes
from flotta.dev.stack.layout import StackLayout
from flotta.dev.stack.supervision import (
    FIRST_DELAY,
    MAX_DELAY,
    STABLE_AFTER,
    RestartPolicy,
    Supervisor,
    restarts,
)


def test_the_delay_doubles_up_to_a_minute_and_starts_over_after_a_stable_minute() -> None:
    policy = RestartPolicy()
    now = 100.0
    assert policy.observe("bridge", True, now) is False
    delays = []
    for _ in range(8):
        assert policy.observe("bridge", False, now) is False  # the first attempt waits
        state = policy.health["bridge"]
        wait = state.next_attempt - now
        delays.append(wait)
        assert policy.observe("bridge", False, now + wait - 0.01) is False
        now += wait
        assert policy.observe("bridge", False, now) is True
        policy.restarted("bridge", now)
        assert policy.observe("bridge", True, now) is False
    assert delays[:4] == [FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY, 8 * FIRST_DELAY]
    assert max(delays) == MAX_DELAY
    assert policy.health["bridge"].restarts == 8
    policy.observe("bridge", True, now + STABLE_AFTER)
    assert policy.health["bridge"].delay == FIRST_DELAY


def test_an_ended_process_is_started_again_with_its_environment(tmp_path: Path) -> None:
    layout = StackLayout(tmp_path / "stack")
    layout.root.mkdir()
    marker = tmp_path / "env-seen"
    argv = [
        sys.executable,
        "-c",
        "import os, pathlib, time; "
        f"pathlib.Path({str(marker)!r}).write_text(os.environ['FLOTTA_TEST_SECRET']); "
        "time.sleep(60)",
    ]
    secret = {"FLOTTA_TEST_SECRET": "s3cret"}
    first, record = processes.start(
        "worker",
        argv,
        log_path=layout.logs / "worker.log",
        env={**os.environ, **secret},
        extra_env=secret,
    )
    processes.save(layout.processes, [record])
    supervisor = Supervisor(layout)
    try:
        assert supervisor.tick(now=0.0) == []
        _wait(marker.exists)
        os.kill(record.pid, signal.SIGKILL)
        first.wait(timeout=5)
        _wait(lambda: not record.is_running())
        marker.unlink()
        assert supervisor.tick(now=0.1) == []  # down: the first attempt is a second away
        assert supervisor.tick(now=0.1 + FIRST_DELAY) == ["worker"]
        [fresh] = processes.load(layout.processes)
        assert fresh.pid != record.pid
        assert fresh.is_running()
        assert fresh.env == record.env
        _wait(marker.exists)
        assert marker.read_text() == "s3cret"
        assert restarts(layout) == {"worker": 1}
        assert json.loads(supervisor.state_path.read_text())["worker"]["down_for"] is None
        assert oct(layout.processes.stat().st_mode & 0o777) == oct(0o600)
    finally:
        processes.stop_recorded(layout.processes, timeout=5)
        supervisor.close()
        if first.poll() is None:
            first.kill()
            first.wait()


def _wait(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)

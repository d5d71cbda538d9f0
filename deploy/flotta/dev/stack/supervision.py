"""Keeping the stack's processes running: a process that ends is started again, with backoff.

:class:`RestartPolicy` decides when (pure: time is an argument); :class:`Supervisor` looks at
the recorded processes, starts again those that ended, records the new PIDs, and keeps what a
view shows (restarts, the next attempt) in ``supervision.json``. The foreground ``flotta dev
up`` runs it between two refreshes of its view; ``flotta dev up --detach`` leaves a
``flotta dev supervise`` process behind that does the same, started last so that ``flotta dev
down`` (newest first) stops it before the others.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flotta.backoff import BackoffPolicy
from flotta.child_process import same_code_environment
from flotta.dev.stack import processes
from flotta.dev.stack.layout import StackLayout

logger = logging.getLogger(__name__)

FIRST_DELAY = 1.0  # seconds before the first restart
MAX_DELAY = 60.0
STABLE_AFTER = 60.0  # seconds running before the delay starts over
RESTARTS = BackoffPolicy(base=FIRST_DELAY, cap=MAX_DELAY, stable_after=STABLE_AFTER, jitter=0.0)
SUPERVISOR = "supervisor"


@dataclass
class ProcessHealth:
    restarts: int = 0
    down_since: float | None = None  # monotonic, None while running
    next_attempt: float = 0.0
    attempt: int = 0  # restarts since the process last stayed up
    started: float = 0.0  # monotonic time of the last start
    last_exit: str = ""

    @property
    def delay(self) -> float:
        """The wait before the next restart."""
        return RESTARTS.ceiling(self.attempt)


@dataclass
class RestartPolicy:
    """Backoff per process (:data:`RESTARTS`): 1, 2, 4 ... 60 s; back to 1 s after a minute
    up."""

    health: dict[str, ProcessHealth] = field(default_factory=dict)

    def observe(self, name: str, running: bool, now: float) -> bool:
        """Note what a process is doing; True when it should be started again now."""
        state = self.health.setdefault(name, ProcessHealth(started=now))
        if running:
            if state.down_since is not None:
                state.down_since = None
            if now - state.started >= RESTARTS.stable_after:
                state.attempt = 0
            return False
        if state.down_since is None:
            state.down_since = now
            state.next_attempt = now + state.delay
        return now >= state.next_attempt

    def restarted(self, name: str, now: float) -> None:
        state = self.health.setdefault(name, ProcessHealth())
        state.restarts += 1
        state.started = now
        state.down_since = None
        state.attempt += 1

    def failed_to_start(self, name: str, now: float, reason: str) -> None:
        state = self.health.setdefault(name, ProcessHealth())
        state.last_exit = reason
        state.next_attempt = now + state.delay
        state.attempt += 1


class Supervisor:
    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.policy = RestartPolicy()
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # the ones started here

    @property
    def state_path(self) -> Path:
        return self.layout.root / "supervision.json"

    def tick(self, now: float | None = None) -> list[str]:
        """Start again what ended and is due; the names started."""
        now = time.monotonic() if now is None else now
        for child in self._children.values():
            child.poll()  # collects a child of this process that ended
        records = processes.load(self.layout.processes)
        restarted: list[str] = []
        for index, record in enumerate(records):
            if record.name == SUPERVISOR:
                continue
            if not self.policy.observe(record.name, record.is_running(), now):
                continue
            try:
                child, fresh = processes.start(
                    record.name,
                    record.argv,
                    log_path=Path(record.log),
                    env=same_code_environment(dict(record.env)),
                    extra_env=dict(record.env),
                    pid_file=Path(record.pid_file) if record.pid_file else None,
                )
            except OSError as exc:
                self.policy.failed_to_start(record.name, now, str(exc))
                logger.error("could not start %s again: %s", record.name, exc)
                continue
            records[index] = fresh
            self._children[record.name] = child
            self.policy.restarted(record.name, now)
            restarted.append(record.name)
            logger.warning("%s had ended; started again (pid %d)", record.name, fresh.pid)
        if restarted:
            processes.save(self.layout.processes, records)
        self._write_state(now)
        return restarted

    def _write_state(self, now: float) -> None:
        document = {
            name: {
                **asdict(state),
                "delay": state.delay,
                "down_for": None if state.down_since is None else now - state.down_since,
            }
            for name, state in self.policy.health.items()
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=2))
        os.replace(tmp, self.state_path)

    def run(self, *, interval: float = 1.0) -> None:
        """Until stopped by a signal."""
        try:
            while True:
                self.tick()
                time.sleep(interval)
        finally:
            self.close()

    def close(self) -> None:
        """Forget the children started here (they run on; ``flotta dev down`` stops them)."""
        for child in self._children.values():
            if child.poll() is None:
                # Handed over on purpose: without a return code Popen's destructor would warn
                # that the process still runs.
                child.returncode = -1
        self._children.clear()


def restarts(layout: StackLayout) -> dict[str, int]:
    """How often each process was started again, as the supervisor last wrote it."""
    path = layout.root / "supervision.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {name: int(state.get("restarts", 0)) for name, state in document.items()}

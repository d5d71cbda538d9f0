"""Start, record and stop the stack's processes.

Every process the stack starts is recorded with its PID and command line in the state dir, so
``flotta dev down`` (from another shell, or after the ``up`` that started them has gone) ends
exactly those processes and nothing else: a recorded PID whose command line no longer matches
(the process ended and the PID was reused) is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    argv: tuple[str, ...]
    log: str
    env: tuple[tuple[str, str], ...] = ()  # what the stack added to its own environment
    pid_file: str = ""  # kept up to date with the PID (a broker that is sent SIGHUP)

    def is_running(self) -> bool:
        """True when the PID is alive and still runs the command we started."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return tuple(part.decode() for part in cmdline.split(b"\0") if part) == self.argv


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start a process; ``extra_env`` (part of ``env``) is recorded so that a supervisor can
    start it again the same way."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # Ctrl-C reaches `up` only; it stops them in order
        )
    record = ProcessRecord(
        name,
        process.pid,
        tuple(argv),
        str(log_path),
        tuple(sorted((extra_env or {}).items())),
        str(pid_file or ""),
    )
    if pid_file is not None:
        pid_file.write_text(f"{process.pid}\n")
    # /proc/PID/cmdline is empty for a moment after exec; wait so the record can be verified.
    deadline = time.monotonic() + 2.0
    while not record.is_running() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return process, record


def stop(record: ProcessRecord, *, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; returns whether the process was ours and ran."""
    if not record.is_running():
        return False
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(record.pid):
            return True
        time.sleep(0.1)
    if record.is_running():
        os.kill(record.pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)
    return waited == 0


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def save(path: Path, records: Sequence[ProcessRecord]) -> None:
    """Write the records, readable by their owner alone (an environment may hold a secret)."""
    tmp = path.with_suffix(".tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps([asdict(r) for r in records], indent=2))
    os.replace(tmp, path)


def load(path: Path) -> list[ProcessRecord]:
    if not path.exists():
        return []
    return [
        ProcessRecord(
            r["name"],
            int(r["pid"]),
            tuple(r["argv"]),
            r["log"],
            tuple((str(k), str(v)) for k, v in r.get("env", ())),
            str(r.get("pid_file", "")),
        )
        for r in json.loads(path.read_text())
    ]


def stop_recorded(path: Path, *, timeout: float = 60.0) -> list[ProcessRecord]:
    """Stop every recorded process, newest first, and forget them; returns those stopped."""
    stopped = [record for record in reversed(load(path)) if stop(record, timeout=timeout)]
    path.unlink(missing_ok=True)
    return stopped

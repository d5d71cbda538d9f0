"""Server processes this program runs as children (Mosquitto, nats-server): output appended
to a log file, readiness read from that log, stopped with SIGTERM and then SIGKILL."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.02


def same_code_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, with the folders this process imports ``flotta`` from first on
    PYTHONPATH, so a child ``python -m flotta...`` runs the same code whether or not the
    project is installed."""
    import flotta

    portions = [str(Path(p).parent) for p in flotta.__path__]
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    pythonpath = os.pathsep.join(dict.fromkeys([*portions, *existing]))
    return {**os.environ, "PYTHONPATH": pythonpath, **(extra or {})}


def terminate(process: subprocess.Popen[bytes], *, name: str, timeout: float = 5.0) -> int | None:
    """Stop ``process`` (SIGKILL after ``timeout`` seconds) and return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s pid %s ignored SIGTERM; killing it", name, process.pid)
            process.kill()
            process.wait(timeout)
    return process.returncode


class LoggedChild:
    """One child server whose stdout and stderr append to ``log_path``. Subclasses define
    :meth:`start` with :meth:`_spawn` and :meth:`_wait_for_log`."""

    name = "child"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """The log written since the last start."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        raise NotImplementedError

    def _spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the process in its own session, with ``env`` added to this process's
        environment (OSError when it cannot run)."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
            )
        return self._process

    def _wait_for_log(self, ready: Callable[[str], bool], timeout: float, what: str) -> str:
        """Wait until ``ready(log)``; return "" then, else why not (it exited, or time ran out)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if ready(text):
                return ""
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                return f"exited with code {code}"
            if time.monotonic() > deadline:
                return f"not {what} after {timeout:.0f} s"
            time.sleep(POLL_INTERVAL)

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        process = self._process
        if process is None:
            return None
        self._process = None
        return terminate(process, name=self.name, timeout=timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

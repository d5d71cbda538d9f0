"""Run Mosquitto as a child process: start, wait until it serves, reload, stop by PID."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from flotta.childprocess import terminate
from flotta.mosquitto.errors import BrokerError, BrokerStartError

logger = logging.getLogger(__name__)

READY_MARK = " running"  # "mosquitto version 2.0.x running", logged once listeners are open
RELOAD_MARK = "Reloading config."
POLL_INTERVAL = 0.02

_Predicate = Callable[[str], bool]


def find_mosquitto() -> str:
    """The ``mosquitto`` binary: on PATH or in /usr/sbin (Debian)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    return found


class MosquittoProcess:
    """One ``mosquitto -c CONFIG`` process, logging to ``log_path``.

    The configuration must log to stderr (``log_dest stderr``); readiness and reloads are
    read from that log.
    """

    def __init__(self, config_path: Path, *, log_path: Path, binary: str | None = None) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.binary = binary or find_mosquitto()
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

    def start(self, *, timeout: float = 10.0) -> None:
        """Start the broker and return once it is ready; raise BrokerStartError otherwise."""
        if self.running:
            raise BrokerError(f"mosquitto is already running (pid {self.pid})")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [self.binary, "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
        except OSError as exc:
            raise BrokerError(f"cannot run {self.binary}: {exc.strerror}") from None
        logger.info("started mosquitto pid %s with %s", self._process.pid, self.config_path)
        try:
            self._wait_for(lambda text: READY_MARK in text, timeout, "ready")
        except BrokerStartError:
            self.stop()
            raise

    def _wait_for(self, ready: _Predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if ready(text):
                return
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise BrokerStartError(f"exited with code {code}", text[-4000:])
            if time.monotonic() > deadline:
                raise BrokerStartError(f"not {what} after {timeout:.0f} s", text[-4000:])
            time.sleep(POLL_INTERVAL)

    def reload(self, *, timeout: float = 5.0) -> None:
        """SIGHUP: re-read configuration, ACL file, certificates and CRL; wait until done.

        Mosquitto handles the reload in its main loop before any later packet, so a
        connection made after this returns sees the new ACL and CRL.
        """
        if self._process is None or not self.running:
            raise BrokerError("mosquitto is not running")
        before = self.log_text().count(RELOAD_MARK)
        self._process.send_signal(signal.SIGHUP)
        self._wait_for(lambda text: text.count(RELOAD_MARK) > before, timeout, "reloaded")

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """SIGTERM (mosquitto saves its store), then SIGKILL after ``timeout``; the exit code."""
        process = self._process
        if process is None:
            return None
        self._process = None
        return terminate(process, name="mosquitto", timeout=timeout)

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""Run Mosquitto as a child process: start, wait until it serves, reload, stop by PID."""

from __future__ import annotations

import logging
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from flotta.child_process import LoggedChild
from flotta.mosquitto.errors import BrokerError, BrokerStartError
from flotta.mosquitto.openssl import openssl_environment

logger = logging.getLogger(__name__)

READY_MARK = " running"  # "mosquitto version 2.0.x running", logged once listeners are open
RELOAD_MARK = "Reloading config."

_Predicate = Callable[[str], bool]


def find_mosquitto() -> str:
    """The ``mosquitto`` binary: on PATH or in /usr/sbin (Debian)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    return found


class MosquittoProcess(LoggedChild):
    """One ``mosquitto -c CONFIG`` process, logging to ``log_path``.

    The configuration must log to stderr (``log_dest stderr``); readiness and reloads are
    read from that log.
    """

    name = "mosquitto"

    def __init__(
        self,
        config_path: Path,
        *,
        log_path: Path,
        openssl_config: Path | None = None,
        binary: str | None = None,
    ) -> None:
        super().__init__(log_path)
        self.config_path = config_path
        self.openssl_config = openssl_config  # flotta.mosquitto.openssl; None: the system's
        self.binary = binary or find_mosquitto()

    def start(self, *, timeout: float = 10.0) -> None:
        """Start the broker and return once it is ready; raise BrokerStartError otherwise."""
        if self.running:
            raise BrokerError(f"mosquitto is already running (pid {self.pid})")
        try:
            env = openssl_environment(self.openssl_config) if self.openssl_config else None
            process = self._spawn([self.binary, "-c", str(self.config_path)], env=env)
        except OSError as exc:
            raise BrokerError(f"cannot run {self.binary}: {exc.strerror}") from None
        logger.info("started mosquitto pid %s with %s", process.pid, self.config_path)
        try:
            self._wait_for(lambda text: READY_MARK in text, timeout, "ready")
        except BrokerStartError:
            self.stop()
            raise

    def _wait_for(self, ready: _Predicate, timeout: float, what: str) -> None:
        failure = self._wait_for_log(ready, timeout, what)
        if failure:
            raise BrokerStartError(failure, self.log_text()[-4000:])

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
        return super().stop(timeout=timeout)

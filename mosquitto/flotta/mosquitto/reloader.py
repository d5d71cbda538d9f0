"""Send Mosquitto SIGHUP when a mounted file changes: the broker pod's sidecar.

    python -m flotta.mosquitto.reloader --watch /etc/mosquitto/crl/crl.pem \\
        [--watch /etc/mosquitto/tls/server.crt] [--process mosquitto] [--interval 5]

In a cluster the operator writes the CRL into a Secret (``flotta.operator.crl_secret``) and
the kubelet updates the broker pod's copy of it, but Mosquitto reads its CRL (and its
certificates) only at start and on SIGHUP. This sidecar runs in the broker pod with
``shareProcessNamespace: true`` and the user id Mosquitto runs as, so it may signal it
without any capability. It compares the files' contents every ``--interval`` seconds (the
kubelet swaps a directory symlink, which a watch on the file itself would miss) and, when
one changed, signals every process of the pod whose name is ``--process``.

Standard library only: it runs from the control-plane image with nothing else installed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

PROC = Path("/proc")
DEFAULT_INTERVAL = 5.0

Fingerprint = tuple[str | None, ...]
Finder = Callable[[], list[int]]
Sender = Callable[[int, int], None]


def fingerprint(paths: Iterable[Path]) -> Fingerprint:
    """The SHA-256 of each file's content (None for a file that cannot be read)."""
    digests: list[str | None] = []
    for path in paths:
        try:
            digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            digests.append(None)
    return tuple(digests)


def find_processes(name: str, proc: Path = PROC) -> list[int]:
    """The ids of the visible processes whose name (``/proc/PID/comm``) is ``name``."""
    own = os.getpid()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:  # the process ended meanwhile
            continue
        if comm == name[:15]:  # the kernel keeps 15 characters of a process name
            found.append(int(entry.name))
    return sorted(found)


class Reloader:
    """Remembers the files' contents; ``check`` signals the processes when they changed."""

    def __init__(
        self,
        paths: Sequence[Path],
        find: Finder,
        *,
        signum: int = signal.SIGHUP,
        send: Sender = os.kill,
    ) -> None:
        self.paths = tuple(paths)
        self._find = find
        self._signum = signum
        self._send = send
        self._seen = fingerprint(self.paths)
        self.reloads = 0

    def check(self) -> bool:
        """Signal the processes when a file changed since the last check; True if it did."""
        current = fingerprint(self.paths)
        if current == self._seen:
            return False
        changed = [
            str(p) for p, a, b in zip(self.paths, self._seen, current, strict=True) if a != b
        ]
        if None in current:
            # A file is missing (a Secret being replaced): wait until it is back.
            logger.warning("not reloading yet: cannot read %s", ", ".join(changed))
            return False
        pids = self._find()
        if not pids:
            # Not running (restarting): it reads the new files when it starts.
            logger.warning("%s changed, but no process to signal", ", ".join(changed))
        for pid in pids:
            try:
                self._send(pid, self._signum)
            except ProcessLookupError:
                continue
            logger.info(
                "%s changed: sent signal %d to pid %d", ", ".join(changed), self._signum, pid
            )
        self._seen = current
        self.reloads += 1
        return True

    def run(self, stop: threading.Event, interval: float = DEFAULT_INTERVAL) -> None:
        """Check every ``interval`` seconds until ``stop`` is set."""
        while not stop.wait(interval):
            try:
                self.check()
            except PermissionError as exc:
                logger.error("cannot signal the broker (same user id as Mosquitto?): %s", exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flotta.mosquitto.reloader",
        description="send a process SIGHUP when one of the watched files changes",
    )
    parser.add_argument(
        "--watch", action="append", type=Path, required=True, metavar="FILE", help="repeatable"
    )
    parser.add_argument("--process", default="mosquitto", help="name of the process to signal")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    process: str = args.process
    reloader = Reloader(args.watch, lambda: find_processes(process))
    logger.info("watching %s; SIGHUP to %r on change", ", ".join(map(str, reloader.paths)), process)
    reloader.run(stop, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())

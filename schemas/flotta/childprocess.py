"""Stop a child process this program started: SIGTERM, then SIGKILL if it does not exit."""

from __future__ import annotations

import logging
import subprocess

logger = logging.getLogger(__name__)


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

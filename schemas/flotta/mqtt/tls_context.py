"""The client's TLS context, built once and again only when its files change on disk.

Building a context parses the CA bundle, the certificate and the key (about 3 ms); a fleet
simulator reconnecting thousands of clients, or a device retrying through a long outage, would
otherwise pay that at every attempt. A renewed certificate (the files replaced) is picked up at
the next attempt. Called from the connecting worker thread, one attempt at a time per client.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from flotta.mqtt.settings import TlsFiles

FileStamp = tuple[int, int, int]  # inode, size, mtime in ns


class TlsContextCache:
    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._stamps: tuple[FileStamp, ...] | None = None
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        """The current context; raises OSError or ValueError for missing or broken files."""
        stamps = tuple(_stamp(path) for path in self._paths())
        if self._context is None or stamps != self._stamps:
            self._context = self._files.context()
            self._stamps = stamps
        return self._context

    def _paths(self) -> list[Path]:
        files = self._files
        return [p for p in (files.ca, files.cert, files.key) if p is not None]


def _stamp(path: Path) -> FileStamp:
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns

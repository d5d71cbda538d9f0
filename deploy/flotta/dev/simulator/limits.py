"""Open-file limits: thousands of TLS connections need thousands of file descriptors."""

from __future__ import annotations

import resource

FDS_PER_DEVICE = 1  # one socket; certificates are read once and closed
FD_HEADROOM = 256


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never past the hard limit); returns the
    soft limit now in force. Children started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if ceiling > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    return soft


def fds_needed(devices: int) -> int:
    return devices * FDS_PER_DEVICE + FD_HEADROOM

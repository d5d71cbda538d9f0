"""A small /proc and /sys tree for collectors in service tests."""

from __future__ import annotations

from pathlib import Path

FILES = {
    "proc/stat": "cpu0 100 0 50 1000 0 0 0 0 0 0\nbtime 1700000000\n",
    "proc/meminfo": "MemTotal: 1000 kB\nMemAvailable: 500 kB\n",
    "proc/loadavg": "0.10 0.20 0.30 1/10 99\n",
    "proc/net/dev": "h1\nh2\n  lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
    "proc/self/mounts": "",
}


def sample_root(folder: Path) -> Path:
    for relative, text in FILES.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder

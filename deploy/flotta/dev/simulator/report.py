"""What a simulator process tells a benchmark about its devices, as a small JSON file.

A benchmark that subscribes to every device's topics to see what they did spends as much CPU
as a device does on each message, on the same cores as the system it measures. The devices
know first-hand: a device counts as online once the broker acknowledged its birth, and a
version as acknowledged once the broker acknowledged the status (or birth) that reports it.
Each process writes a summary every ``REPORT_INTERVAL`` seconds; :func:`read_reports` sums
those of every process.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPORT_INTERVAL = 0.5  # seconds
BIRTH_BUCKETS = 10  # per second: births are counted in tenths of a second


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What one device contributes to a report."""

    online_since: float | None  # wall-clock time of its current birth's acknowledgement
    reported_version: str  # the last applied version the broker acknowledged
    reported_at: float = 0.0  # wall-clock time of that acknowledgement (0: none yet)


@dataclass(slots=True)
class FleetReport:
    devices: int = 0
    online: int = 0
    births: Counter[int] = field(default_factory=Counter)  # tenth of a second -> online devices
    reported: Counter[str] = field(default_factory=Counter)  # version -> devices
    # version -> wall-clock time of its first and of its last acknowledgement: exact, however
    # late a busy simulator writes its report
    first_reported: dict[str, float] = field(default_factory=dict)
    last_reported: dict[str, float] = field(default_factory=dict)
    last_birth: float = 0.0  # the latest acknowledged birth of an online device

    def online_since(self, since: float) -> int:
        """Devices online on a connection whose birth was acknowledged after ``since`` (or
        within the same tenth of a second)."""
        first = math.floor(since * BIRTH_BUCKETS)
        return sum(count for bucket, count in self.births.items() if bucket >= first)

    def reporting(self, versions: Iterable[str]) -> int:
        return sum(self.reported[version] for version in versions)

    def first_report(self, versions: Iterable[str]) -> float:
        """When the first device acknowledged one of ``versions`` (0: none did)."""
        times = [self.first_reported[v] for v in versions if v in self.first_reported]
        return min(times, default=0.0)

    def last_report(self, versions: Iterable[str]) -> float:
        """When the last device so far acknowledged one of ``versions`` (0: none did)."""
        return max((self.last_reported.get(v, 0.0) for v in versions), default=0.0)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "devices": self.devices,
                "online": self.online,
                "births": {str(k): v for k, v in self.births.items()},
                "reported": dict(self.reported),
                "first_reported": self.first_reported,
                "last_reported": self.last_reported,
                "last_birth": self.last_birth,
            }
        ).encode()

    def add(self, data: dict[str, object]) -> None:
        self.devices += _int(data.get("devices"))
        self.online += _int(data.get("online"))
        births = data.get("births")
        if isinstance(births, dict):
            self.births.update({int(k): _int(v) for k, v in births.items()})
        reported = data.get("reported")
        if isinstance(reported, dict):
            self.reported.update({str(k): _int(v) for k, v in reported.items()})
        for version, at in _times(data.get("first_reported")).items():
            self.first_reported[version] = min(at, self.first_reported.get(version, at))
        for version, at in _times(data.get("last_reported")).items():
            self.last_reported[version] = max(at, self.last_reported.get(version, at))
        self.last_birth = max(self.last_birth, _float(data.get("last_birth")))


def summarise(views: Iterable[DeviceView]) -> FleetReport:
    report = FleetReport()
    for view in views:
        report.devices += 1
        version, at = view.reported_version, view.reported_at
        report.reported[version] += 1
        if at:
            report.first_reported[version] = min(at, report.first_reported.get(version, at))
            report.last_reported[version] = max(at, report.last_reported.get(version, at))
        if view.online_since is not None:
            report.online += 1
            report.births[math.floor(view.online_since * BIRTH_BUCKETS)] += 1
            report.last_birth = max(report.last_birth, view.online_since)
    return report


def report_path(path: Path, shard: int | None) -> Path:
    """The file of one process: ``PATH`` alone, ``PATH.K`` for shard K."""
    return path if shard is None else path.with_name(f"{path.name}.{shard}")


def read_reports(paths: Iterable[Path]) -> FleetReport:
    """The sum of the processes' latest reports (a missing or half-written one counts as
    nothing yet: they are replaced atomically, so that is only before the first)."""
    total = FleetReport()
    for path in paths:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            total.add(data)
    return total


async def keep_reporting(
    path: Path, views: Callable[[], Iterable[DeviceView]], every: float = REPORT_INTERVAL
) -> None:
    """Rewrite ``path`` every ``every`` seconds from ``views()`` until cancelled."""
    partial = path.with_name(f".{path.name}.partial")
    while True:
        partial.write_bytes(summarise(views()).to_json())
        os.replace(partial, path)  # readers see the whole of one report; no fsync needed
        await asyncio.sleep(every)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _times(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): _float(v) for k, v in value.items()}

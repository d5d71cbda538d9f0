"""What a simulator process tells a benchmark about its devices, as a small JSON file.

A benchmark that subscribes to every device's topics to see what they did spends as much CPU
as a device does on each message, on the same cores as the system it measures. The devices
know first-hand: a device counts as online once the broker acknowledged its birth, and as having
acknowledged a new version once the broker acknowledged the status (or birth) that reports it.

Desired-state versions are per device (the device id is part of what is hashed), so the report
counts times, not versions: how many devices came online, and how many last changed the version
they report, in each tenth of a second; and for each device that failed a version (an injected
fault), when it received that version and when its report that it rolled back was acknowledged.
Each process writes a summary every
``REPORT_INTERVAL`` seconds; :func:`read_reports` sums those of every process.
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
BUCKETS = 10  # per second: births and version changes are counted in tenths of a second


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What one device contributes to a report."""

    online_since: float | None  # wall-clock time of its current birth's acknowledgement
    reported_at: float = 0.0  # wall-clock time it first acknowledged its current version (0: none)
    # the latest version it failed: when it received it, and when the broker acknowledged its
    # report that it rolled back (0: not yet)
    rollback: tuple[float, float] | None = None


@dataclass(slots=True)
class FleetReport:
    devices: int = 0
    online: int = 0
    unreported: int = 0  # devices that never had a version acknowledged
    births: Counter[int] = field(default_factory=Counter)  # tenth of a second -> online devices
    changes: Counter[int] = field(default_factory=Counter)  # tenth of a second -> devices
    last_birth: float = 0.0  # the latest acknowledged birth of an online device
    last_change: float = 0.0  # the latest acknowledgement of a new version
    # the MQTT clients' warnings (failed connection attempts mostly), by kind (mqtt_warnings.py)
    mqtt_warnings: Counter[str] = field(default_factory=Counter)
    # per device that failed a version: (received, rolled back reported or 0), wall clock
    rollbacks: list[tuple[float, float]] = field(default_factory=list)

    def rollbacks_since(self, since: float) -> list[tuple[float, float]]:
        """(received, rolled back reported or 0) of the devices that received the version they
        failed last after ``since``."""
        return sorted(r for r in self.rollbacks if r[0] >= since)

    def online_since(self, since: float) -> int:
        """Devices online on a connection whose birth was acknowledged after ``since`` (or
        within the same tenth of a second)."""
        return _since(self.births, since)

    def changed_since(self, since: float) -> int:
        """Devices whose latest version change was acknowledged after ``since`` (or within the
        same tenth of a second)."""
        return _since(self.changes, since)

    def first_change_since(self, since: float) -> float | None:
        """Start of the first tenth of a second, from ``since`` on, with a version change."""
        first = math.floor(since * BUCKETS)
        buckets = [bucket for bucket, count in self.changes.items() if bucket >= first and count]
        return min(buckets) / BUCKETS if buckets else None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "devices": self.devices,
                "online": self.online,
                "unreported": self.unreported,
                "births": {str(k): v for k, v in self.births.items()},
                "changes": {str(k): v for k, v in self.changes.items()},
                "last_birth": self.last_birth,
                "last_change": self.last_change,
                "mqtt_warnings": dict(self.mqtt_warnings),
                "rollbacks": self.rollbacks,
            }
        ).encode()

    def add(self, data: dict[str, object]) -> None:
        self.devices += _int(data.get("devices"))
        self.online += _int(data.get("online"))
        self.unreported += _int(data.get("unreported"))
        self.births.update(_buckets(data.get("births")))
        self.changes.update(_buckets(data.get("changes")))
        self.last_birth = max(self.last_birth, _float(data.get("last_birth")))
        self.last_change = max(self.last_change, _float(data.get("last_change")))
        warnings = data.get("mqtt_warnings")
        if isinstance(warnings, dict):
            self.mqtt_warnings.update({str(k): _int(v) for k, v in warnings.items()})
        rollbacks = data.get("rollbacks")
        if isinstance(rollbacks, list):
            self.rollbacks += [
                (_float(item[0]), _float(item[1]))
                for item in rollbacks
                if isinstance(item, list) and len(item) == 2
            ]


def summarise(views: Iterable[DeviceView]) -> FleetReport:
    report = FleetReport()
    births, changes = report.births, report.changes
    for view in views:
        report.devices += 1
        if view.reported_at:
            changes[math.floor(view.reported_at * BUCKETS)] += 1
            report.last_change = max(report.last_change, view.reported_at)
        else:
            report.unreported += 1
        if view.rollback is not None:
            report.rollbacks.append(view.rollback)
        if view.online_since is not None:
            report.online += 1
            births[math.floor(view.online_since * BUCKETS)] += 1
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
    path: Path,
    views: Callable[[], Iterable[DeviceView]],
    every: float = REPORT_INTERVAL,
    *,
    warnings: Counter[str] | None = None,
) -> None:
    """Rewrite ``path`` every ``every`` seconds from ``views()`` (and the process's MQTT
    warnings) until cancelled."""
    partial = path.with_name(f".{path.name}.partial")
    while True:
        report = summarise(views())
        if warnings:
            report.mqtt_warnings.update(warnings)
        partial.write_bytes(report.to_json())
        os.replace(partial, path)  # readers see the whole of one report; no fsync needed
        await asyncio.sleep(every)


def _since(buckets: Counter[int], since: float) -> int:
    first = math.floor(since * BUCKETS)
    return sum(count for bucket, count in buckets.items() if bucket >= first)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _buckets(value: object) -> dict[int, int]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, count in value.items():
        try:
            out[int(key)] = _int(count)
        except ValueError:
            continue
    return out

"""Reading system metrics from /proc and /sys (the I/O side of :mod:`procfs`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from flotta.agent.telemetry import procfs
from flotta.agent.telemetry.samples import Measurement

log = logging.getLogger(__name__)


class SystemCollector:
    """Collects node_exporter-named measurements. ``root`` is where ``proc`` and ``sys``
    are found (``/`` on a device, a prepared folder in tests)."""

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        clock_ticks: int | None = None,
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = root
        self._clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self._statvfs = statvfs
        self._clock = clock
        self.failures = 0

    def collect(self) -> list[Measurement]:
        result = [Measurement("node_time_seconds", self._clock())]
        sources: list[tuple[str, Callable[[str], list[Measurement]]]] = [
            ("proc/stat", lambda text: procfs.parse_stat(text, clock_ticks=self._clock_ticks)),
            ("proc/meminfo", procfs.parse_meminfo),
            ("proc/loadavg", procfs.parse_loadavg),
            ("proc/net/dev", procfs.parse_net_dev),
        ]
        for relative, parse in sources:
            result.extend(self._read(relative, parse))
        result.extend(self._read("proc/self/mounts", self._filesystems))
        result.extend(self._thermal_zones())
        return result

    def _read(self, relative: str, parse: Callable[[str], list[Measurement]]) -> list[Measurement]:
        path = self._root / relative
        try:
            return parse(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError) as exc:
            self.failures += 1
            log.warning("system metrics: cannot read %s: %s", path, exc)
            return []

    def _filesystems(self, text: str) -> list[Measurement]:
        result: list[Measurement] = []
        for mount in procfs.parse_mounts(text):
            try:
                stats = self._statvfs(mount.mountpoint)
            except OSError as exc:
                log.debug("system metrics: statvfs %s: %s", mount.mountpoint, exc)
                continue
            result.extend(procfs.filesystem_measurements(mount, stats))
        return result

    def _thermal_zones(self) -> list[Measurement]:
        result: list[Measurement] = []
        for zone_dir in sorted((self._root / "sys/class/thermal").glob("thermal_zone*")):
            try:
                zone_type = (zone_dir / "type").read_text()
                temp = (zone_dir / "temp").read_text()
                result.append(procfs.thermal_zone_measurement(zone_dir.name[12:], zone_type, temp))
            except (OSError, ValueError) as exc:
                log.debug("system metrics: thermal zone %s: %s", zone_dir, exc)
        return result

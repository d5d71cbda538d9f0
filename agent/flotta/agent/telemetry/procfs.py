"""Parsers for /proc and /sys text into node_exporter-named measurements: pure, no I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass

from flotta.agent.telemetry.samples import Measurement

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
NET_RECEIVE = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
NET_TRANSMIT = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")
# node_exporter's default exclusions: pseudo and container-internal filesystems.
IGNORED_FS_TYPES = frozenset(
    [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ]
)
IGNORED_MOUNT_PREFIXES = ("/dev", "/proc", "/sys", "/run/credentials/", "/var/lib/containers/")


def parse_stat(text: str, *, clock_ticks: int) -> list[Measurement]:
    """/proc/stat: per-CPU time by mode, boot time, context switches, forks, process counts."""
    result: list[Measurement] = []
    simple = {
        "btime": "node_boot_time_seconds",
        "ctxt": "node_context_switches_total",
        "processes": "node_forks_total",
        "procs_running": "node_procs_running",
        "procs_blocked": "node_procs_blocked",
        "intr": "node_intr_total",
    }
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        if key.startswith("cpu") and key != "cpu" and key[3:].isdigit():
            cpu = key[3:]
            for mode, ticks in zip(CPU_MODES, fields[1:], strict=False):
                result.append(
                    Measurement(
                        "node_cpu_seconds_total",
                        int(ticks) / clock_ticks,
                        {"cpu": cpu, "mode": mode},
                    )
                )
        elif key in simple and len(fields) >= 2:
            result.append(Measurement(simple[key], float(fields[1])))
    return result


def parse_meminfo(text: str) -> list[Measurement]:
    """/proc/meminfo: ``MemTotal: 16 kB`` -> node_memory_MemTotal_bytes 16384."""
    result: list[Measurement] = []
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not key or not fields:
            continue
        name = key.strip().replace("(", "_").replace(")", "")
        value = float(fields[0])
        if len(fields) == 2 and fields[1] == "kB":
            result.append(Measurement(f"node_memory_{name}_bytes", value * 1024))
        else:
            result.append(Measurement(f"node_memory_{name}", value))
    return result


def parse_loadavg(text: str) -> list[Measurement]:
    fields = text.split()
    return [
        Measurement(f"node_load{minutes}", float(value))
        for minutes, value in zip((1, 5, 15), fields[:3], strict=True)
    ]


def parse_net_dev(text: str) -> list[Measurement]:
    """/proc/net/dev: two header lines, then ``iface: 8 receive and 8 transmit counters``."""
    result: list[Measurement] = []
    for line in text.splitlines()[2:]:
        device, _, counters = line.partition(":")
        values = counters.split()
        if len(values) != len(NET_RECEIVE) + len(NET_TRANSMIT):
            continue
        labels = {"device": device.strip()}
        for direction, names, chunk in (
            ("receive", NET_RECEIVE, values[:8]),
            ("transmit", NET_TRANSMIT, values[8:]),
        ):
            for name, value in zip(names, chunk, strict=True):
                result.append(
                    Measurement(f"node_network_{direction}_{name}_total", float(value), labels)
                )
    return result


@dataclass(frozen=True, slots=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    readonly: bool
    options: str = ""


def parse_mounts(text: str) -> list[Mount]:
    """/proc/mounts (or /proc/self/mounts), without pseudo filesystems; the first mount of
    each mount point wins, as node_exporter reports it once."""
    mounts: list[Mount] = []
    seen: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        device, mountpoint, fstype = (_unescape_octal(f) for f in fields[:3])
        if fstype in IGNORED_FS_TYPES or mountpoint in seen or _ignored_mountpoint(mountpoint):
            continue
        seen.add(mountpoint)
        mounts.append(Mount(device, mountpoint, fstype, "ro" in fields[3].split(","), fields[3]))
    return mounts


def _ignored_mountpoint(mountpoint: str) -> bool:
    return any(
        mountpoint == prefix.rstrip("/") or mountpoint.startswith(prefix.rstrip("/") + "/")
        for prefix in IGNORED_MOUNT_PREFIXES
    )


def _unescape_octal(text: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount fields as ``\\ooo``."""
    if "\\" not in text:
        return text
    out: list[str] = []
    position = 0
    while position < len(text):
        chunk = text[position + 1 : position + 4]
        if text[position] == "\\" and len(chunk) == 3 and all(c in "01234567" for c in chunk):
            out.append(chr(int(chunk, 8)))
            position += 4
        else:
            out.append(text[position])
            position += 1
    return "".join(out)


def filesystem_measurements(mount: Mount, stats: os.statvfs_result) -> list[Measurement]:
    labels = {"device": mount.device, "fstype": mount.fstype, "mountpoint": mount.mountpoint}
    block = stats.f_frsize or stats.f_bsize
    return [
        Measurement("node_filesystem_size_bytes", float(stats.f_blocks * block), labels),
        Measurement("node_filesystem_free_bytes", float(stats.f_bfree * block), labels),
        Measurement("node_filesystem_avail_bytes", float(stats.f_bavail * block), labels),
        Measurement("node_filesystem_files", float(stats.f_files), labels),
        Measurement("node_filesystem_files_free", float(stats.f_ffree), labels),
        Measurement("node_filesystem_readonly", 1.0 if mount.readonly else 0.0, labels),
    ]


def thermal_zone_measurement(zone: str, zone_type: str, temp_text: str) -> Measurement:
    """/sys/class/thermal/thermal_zoneN/{type,temp}: millidegrees Celsius."""
    return Measurement(
        "node_thermal_zone_temp",
        int(temp_text.strip()) / 1000,
        {"zone": zone, "type": zone_type.strip()},
    )

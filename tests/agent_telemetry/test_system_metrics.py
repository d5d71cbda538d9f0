import os
from pathlib import Path

import pytest

from flotta.agent.telemetry import procfs
from flotta.agent.telemetry.samples import AllowList, Measurement, stamp
from flotta.agent.telemetry.system import SystemCollector

STAT = """\
cpu  10132153 290696 3084719 46828483 16683 0 25195 0 0 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 0 0
cpu1 1335 100 200 300 40 0 5 7 0 0
intr 1462898 8 0 0
ctxt 12345678
btime 1700000000
processes 86031
procs_running 2
procs_blocked 1
softirq 2 0 0
"""

MEMINFO = """\
MemTotal:       16337372 kB
MemFree:         1057412 kB
MemAvailable:    8763124 kB
Active(anon):    2318632 kB
HugePages_Total:       0
"""

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 2776770   11307    0    0    0     0          0         0  2776770   11307    0    0    0     0       0          0
  eth0: 1215645    2751    1    2    3     4          5         6  1782404    4324    7    8    9    10      11         12
"""

MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
tmpfs /run tmpfs rw,nosuid 0 0
/dev/sdb1 /mnt/my\\040data xfs ro,relatime 0 0
overlay /var/lib/containers/storage/overlay/x overlay rw 0 0
/dev/sda1 / ext4 rw 0 0
"""


def by_key(measurements: list[Measurement]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(m.name, tuple(sorted(m.labels.items()))): m.value for m in measurements}


def test_stat_gives_cpu_seconds_per_mode_and_boot_time() -> None:
    values = by_key(procfs.parse_stat(STAT, clock_ticks=100))
    assert values[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user")))] == 13932.80
    assert values[("node_cpu_seconds_total", (("cpu", "1"), ("mode", "steal")))] == 0.07
    assert values[("node_boot_time_seconds", ())] == 1700000000
    assert values[("node_context_switches_total", ())] == 12345678
    assert values[("node_procs_blocked", ())] == 1
    # the aggregate "cpu" line is not a CPU
    assert not any(labels == (("cpu", ""),) for _, labels in values)
    assert sum(1 for name, _ in values if name == "node_cpu_seconds_total") == 16


def test_meminfo_in_bytes_with_node_exporter_names() -> None:
    values = by_key(procfs.parse_meminfo(MEMINFO))
    assert values[("node_memory_MemTotal_bytes", ())] == 16337372 * 1024
    assert values[("node_memory_MemAvailable_bytes", ())] == 8763124 * 1024
    assert values[("node_memory_Active_anon_bytes", ())] == 2318632 * 1024
    assert values[("node_memory_HugePages_Total", ())] == 0


def test_loadavg() -> None:
    values = by_key(procfs.parse_loadavg("0.52 0.58 0.59 1/467 12345\n"))
    assert values == {("node_load1", ()): 0.52, ("node_load5", ()): 0.58, ("node_load15", ()): 0.59}


def test_net_dev_counters_per_device() -> None:
    values = by_key(procfs.parse_net_dev(NET_DEV))
    eth0 = (("device", "eth0"),)
    assert values[("node_network_receive_bytes_total", eth0)] == 1215645
    assert values[("node_network_receive_multicast_total", eth0)] == 6
    assert values[("node_network_transmit_bytes_total", eth0)] == 1782404
    assert values[("node_network_transmit_colls_total", eth0)] == 10
    assert values[("node_network_transmit_compressed_total", eth0)] == 12
    assert len(values) == 32


def test_mounts_skip_pseudo_filesystems_and_unescape() -> None:
    mounts = procfs.parse_mounts(MOUNTS)
    assert [(m.device, m.mountpoint, m.fstype, m.readonly) for m in mounts] == [
        ("/dev/sda1", "/", "ext4", False),
        ("tmpfs", "/run", "tmpfs", False),
        ("/dev/sdb1", "/mnt/my data", "xfs", True),
    ]


def test_filesystem_sizes_from_statvfs() -> None:
    mount = procfs.Mount("/dev/sda1", "/", "ext4", readonly=False)
    stats = os.statvfs_result((4096, 4096, 1000, 400, 300, 50, 20, 20, 0, 255))
    values = by_key(procfs.filesystem_measurements(mount, stats))
    labels = (("device", "/dev/sda1"), ("fstype", "ext4"), ("mountpoint", "/"))
    assert values[("node_filesystem_size_bytes", labels)] == 4096 * 1000
    assert values[("node_filesystem_avail_bytes", labels)] == 4096 * 300
    assert values[("node_filesystem_free_bytes", labels)] == 4096 * 400
    assert values[("node_filesystem_readonly", labels)] == 0


def make_root(tmp_path: Path) -> Path:
    for relative, text in {
        "proc/stat": STAT,
        "proc/meminfo": MEMINFO,
        "proc/loadavg": "1.0 2.0 3.0 1/1 1\n",
        "proc/net/dev": NET_DEV,
        "proc/self/mounts": MOUNTS,
        "sys/class/thermal/thermal_zone0/type": "x86_pkg_temp\n",
        "sys/class/thermal/thermal_zone0/temp": "45500\n",
    }.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_collector_reads_a_prepared_root(tmp_path: Path) -> None:
    stats = os.statvfs_result((4096, 4096, 10, 5, 4, 3, 2, 2, 0, 255))
    collector = SystemCollector(
        make_root(tmp_path), clock_ticks=100, statvfs=lambda _: stats, clock=lambda: 1234.5
    )
    values = by_key(collector.collect())
    assert values[("node_time_seconds", ())] == 1234.5
    assert values[("node_load15", ())] == 3.0
    assert values[("node_thermal_zone_temp", (("type", "x86_pkg_temp"), ("zone", "0")))] == 45.5
    assert (
        values[
            (
                "node_filesystem_size_bytes",
                (("device", "/dev/sdb1"), ("fstype", "xfs"), ("mountpoint", "/mnt/my data")),
            )
        ]
        == 40960
    )
    assert collector.failures == 0


def test_collector_counts_unreadable_and_malformed_files(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "proc/loadavg").write_text("garbage\n")
    (root / "proc/meminfo").unlink()
    collector = SystemCollector(root, clock_ticks=100)
    names = {m.name for m in collector.collect()}
    assert "node_load1" not in names
    assert "node_memory_MemTotal_bytes" not in names
    assert "node_cpu_seconds_total" in names
    assert collector.failures == 2


def test_collector_on_this_machine() -> None:
    names = {m.name for m in SystemCollector().collect()}
    for expected in (
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "node_filesystem_size_bytes",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_boot_time_seconds",
        "node_time_seconds",
    ):
        assert expected in names


def test_allow_list_exact_names_and_patterns() -> None:
    allow = AllowList(["node_load1", "node_memory_*"])
    assert allow.allows("node_load1")
    assert allow.allows("node_memory_MemTotal_bytes")
    assert not allow.allows("node_load5")
    assert AllowList(None).allows("anything")
    assert not AllowList([]).allows("anything")


def test_stamp_filters_and_skips_values_json_cannot_carry() -> None:
    measurements = [
        Measurement("node_load1", 1.0),
        Measurement("node_load5", float("nan")),
        Measurement("node_load15", 3.0),
        Measurement("node_load1", 2.0, {"x" * 200: "too long label name"}),
    ]
    samples, skipped = stamp(
        measurements, timestamp_ms=99, allow=AllowList(["node_load1", "node_load5"])
    )
    assert [(s.name, s.value, s.timestamp_ms) for s in samples] == [("node_load1", 1.0, 99)]
    assert skipped == 2


def test_stat_garbage_is_a_value_error_and_lone_keys_are_ignored() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        procfs.parse_stat("cpu0 x y\n", clock_ticks=100)
    assert procfs.parse_stat("btime\n", clock_ticks=100) == []

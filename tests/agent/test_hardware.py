"""Hardware inventory: parsers on sample file contents, a sample tree, and this machine."""

from __future__ import annotations

from pathlib import Path

from flotta.agent.hardware import (
    changed_sections,
    collect,
    parse_cpuinfo,
    parse_if_inet6,
    parse_meminfo,
    parse_os_release,
    system_vendor,
)
from flotta.agent.reporting import HardwareTracker
from flotta.schemas.wire import Hardware, HeartbeatConfiguration
from flotta.schemas.wire.desired import HardwareProfile
from flotta.schemas.wire.hardware import Memory

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 142
model name\t: Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz
cpu MHz\t\t: 1800.000
flags\t\t: fpu vme de sse sse2

processor\t: 1
model\t\t: 142
model name\t: Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz
cpu MHz\t\t: 1700.000
flags\t\t: fpu vme de sse sse2
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""

MEMINFO = "MemTotal:        1012345 kB\nMemFree:          500000 kB\n"

OS_RELEASE = (
    'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39 (IoT Edition)"\n'
)

IF_INET6 = (
    "fe800000000000000000000000000001 02 40 20 80     eth0\n"
    "20010db8000000000000000000000002 02 40 00 00     eth0\n"
    "garbage\n"
)


def test_x86_cpuinfo() -> None:
    cpu = parse_cpuinfo(X86_CPUINFO, architecture="x86_64")
    assert cpu.count == 2
    assert cpu.model_name.startswith("Intel(R) Core(TM) i5")
    assert cpu.frequency == 1800.0
    assert cpu.flags == ["fpu", "vme", "de", "sse", "sse2"]
    assert cpu.architecture == "x86_64"


def test_arm_cpuinfo_takes_the_model_and_features() -> None:
    cpu = parse_cpuinfo(ARM_CPUINFO)
    assert cpu.count == 2
    assert cpu.model_name == "BCM2835"
    assert "asimd" in cpu.flags


def test_meminfo_os_release_and_ipv6() -> None:
    assert parse_meminfo(MEMINFO).physical_bytes == 1012345 * 1024
    assert parse_meminfo("nonsense").physical_bytes == 0
    release = parse_os_release(OS_RELEASE, kernel="6.5.0")
    assert (release.id, release.version_id, release.kernel) == ("fedora", "39", "6.5.0")
    assert release.pretty_name == "Fedora Linux 39 (IoT Edition)"
    assert parse_if_inet6(IF_INET6) == {"eth0": ["fe80::1/64", "2001:db8::2/64"]}


def test_virtual_machines_are_recognised() -> None:
    assert system_vendor("QEMU", "Standard PC", "", hypervisor_flag=False).virtual
    assert system_vendor("", "", "", hypervisor_flag=True).virtual
    assert not system_vendor("Raspberry Pi", "Pi 4", "1000", hypervisor_flag=False).virtual


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_collect_from_a_sample_tree(tmp_path: Path) -> None:
    write(tmp_path, "proc/cpuinfo", ARM_CPUINFO)
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "proc/sys/kernel/osrelease", "6.1.0-rpi\n")
    write(tmp_path, "proc/sys/kernel/hostname", "edge-7\n")
    write(tmp_path, "etc/os-release", OS_RELEASE)
    write(tmp_path, "sys/class/dmi/id/sys_vendor", "Acme\n")
    write(tmp_path, "sys/class/dmi/id/product_name", "Box 1\n")
    write(tmp_path, "sys/class/dmi/id/product_serial", "SN123\n")
    write(tmp_path, "sys/block/mmcblk0/size", "62333952\n")
    write(tmp_path, "sys/block/mmcblk0/queue/rotational", "0\n")
    write(tmp_path, "sys/block/loop0/size", "8\n")
    write(tmp_path, "sys/class/net/wwan0/address", "02:00:00:00:00:01\n")
    write(tmp_path, "sys/class/net/wwan0/mtu", "1430\n")
    write(tmp_path, "sys/class/net/wwan0/carrier", "1\n")
    write(tmp_path, "sys/class/net/lo/address", "00:00:00:00:00:00\n")
    hardware = collect(tmp_path)
    assert hardware.hostname == "edge-7"
    assert hardware.system_vendor is not None
    assert hardware.system_vendor.serial_number == "SN123"
    assert hardware.system_vendor.product_name == "Box 1"
    assert hardware.disks is not None
    assert [(d.name, d.size_bytes, d.drive_type) for d in hardware.disks] == [
        ("mmcblk0", 62333952 * 512, "SSD")
    ]
    assert hardware.interfaces is not None
    assert [(i.name, i.mtu, i.has_carrier) for i in hardware.interfaces] == [("wwan0", 1430, True)]
    assert hardware.os_release is not None
    assert hardware.os_release.kernel == "6.1.0-rpi"


def test_collect_on_this_machine_is_quick_and_complete() -> None:
    hardware = collect()
    assert hardware.cpu is not None
    assert hardware.cpu.count >= 1
    assert hardware.memory is not None
    assert hardware.memory.physical_bytes > 0
    assert hardware.os_release is not None
    assert hardware.os_release.id


def test_changed_sections_only() -> None:
    before = Hardware(hostname="a", memory=Memory(physical_bytes=1))
    after = Hardware(hostname="a", memory=Memory(physical_bytes=2))
    delta = changed_sections(before, after)
    assert delta is not None
    assert delta.hostname is None
    assert delta.memory == Memory(physical_bytes=2)
    assert changed_sections(after, after) is None


def test_tracker_sends_full_until_delivered_then_deltas() -> None:
    tracker = HardwareTracker()
    heartbeat = HeartbeatConfiguration()
    first = Hardware(hostname="a")
    report = tracker.report(first, heartbeat)
    assert report is not None
    assert report.scope == "full"
    assert tracker.report(first, heartbeat) is not None  # not confirmed yet: full again
    tracker.confirm(first)
    assert tracker.report(first, heartbeat) is None
    changed = tracker.report(Hardware(hostname="b"), heartbeat)
    assert changed is not None
    assert changed.scope == "delta"
    assert changed.hardware.hostname == "b"
    off = HeartbeatConfiguration(hardware_profile=HardwareProfile(include=False))
    assert tracker.report(Hardware(hostname="c"), off) is None
    always = HeartbeatConfiguration(hardware_profile=HardwareProfile(scope="full"))
    full = tracker.report(first, always)
    assert full is not None
    assert full.scope == "full"

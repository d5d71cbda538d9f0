"""Hardware inventory: parsers on sample file contents, a sample tree, and this machine."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flotta.agent.hardware import (
    changed_sections,
    collect,
    parse_bootif,
    parse_cpuinfo,
    parse_if_inet6,
    parse_meminfo,
    parse_os_release,
    pci_names,
    system_vendor,
)
from flotta.agent.reporting import HardwareTracker
from flotta.schemas.codec import encode_fragment
from flotta.schemas.wire import Hardware, HeartbeatConfiguration
from flotta.schemas.wire.desired import HardwareProfile
from flotta.schemas.wire.hardware import Boot, Gpu, HostDevice, Memory, MountInfo

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


PCI_IDS = """# a piece of pci.ids
8086  Intel Corporation
\t0046  Core Processor Integrated Graphics Controller
\t3e92  CoffeeLake-S GT2 [UHD Graphics 630]
\t\t1028 0869  subsystem, not a device
10de  NVIDIA Corporation
\t1eb8  TU104GL [Tesla T4]
"""


def test_boot_interface_and_pci_names() -> None:
    assert parse_bootif("ro quiet BOOTIF=01-52-54-00-AB-CD-EF ip=dhcp") == "52:54:00:ab:cd:ef"
    assert parse_bootif("ro quiet") == ""
    assert pci_names(PCI_IDS, "8086", "3e92") == (
        "Intel Corporation",
        "CoffeeLake-S GT2 [UHD Graphics 630]",
    )
    assert pci_names(PCI_IDS, "10de", "0000") == ("NVIDIA Corporation", "")
    assert pci_names(PCI_IDS, "1234", "0001") == ("", "")


def test_boot_gpus_host_devices_and_mounts_from_a_sample_tree(tmp_path: Path) -> None:
    write(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    write(tmp_path, "arch", "x86_64")
    write(tmp_path, "proc/cmdline", "BOOTIF=01-02-00-00-00-00-01 quiet\n")
    write(tmp_path, "sys/class/net/eth0/address", "02:00:00:00:00:01\n")
    write(tmp_path, "usr/share/misc/pci.ids", PCI_IDS)
    gpu = tmp_path / "sys/devices/pci0000:00/0000:00:02.0"
    write(tmp_path, "sys/devices/pci0000:00/0000:00:02.0/vendor", "0x8086\n")
    write(tmp_path, "sys/devices/pci0000:00/0000:00:02.0/device", "0x3e92\n")
    write(tmp_path, "sys/devices/pci0000:00/0000:00:02.0/class", "0x030000\n")
    (tmp_path / "sys/class/drm/card0").mkdir(parents=True)
    (tmp_path / "sys/class/drm/card0/device").symlink_to(gpu)
    (tmp_path / "sys/class/drm/card0-HDMI-A-1").mkdir()
    (tmp_path / "sys/bus/pci/devices").mkdir(parents=True)
    (tmp_path / "sys/bus/pci/devices/0000:00:02.0").symlink_to(gpu)
    nic = tmp_path / "sys/devices/pci0000:00/0000:00:03.0"
    write(tmp_path, "sys/devices/pci0000:00/0000:00:03.0/class", "0x020000\n")
    (tmp_path / "sys/bus/pci/devices/0000:00:03.0").symlink_to(nic)
    write(
        tmp_path,
        "proc/self/mounts",
        "/dev/sda1 / ext4 rw,relatime 0 0\n"
        "proc /proc proc rw 0 0\n"
        "tmpfs /run tmpfs rw,nosuid 0 0\n"
        "/dev/sdb1 /var/data xfs ro,noatime 0 0\n",
    )
    (tmp_path / "dev/pts").mkdir(parents=True)
    write(tmp_path, "dev/not-a-device", "")
    made = True
    try:
        os.mknod(tmp_path / "dev/ttyUSB0", 0o660 | stat.S_IFCHR, os.makedev(188, 0))
        os.mknod(tmp_path / "dev/pts/0", 0o620 | stat.S_IFCHR, os.makedev(136, 0))
    except PermissionError:
        made = False  # not root: no device files to list

    hardware = collect(tmp_path)
    assert hardware.boot == Boot(current_boot_mode="bios", pxe_interface="eth0")
    assert hardware.gpus == [
        Gpu(
            address="0000:00:02.0",
            vendor_id="8086",
            device_id="3e92",
            vendor="Intel Corporation",
            name="CoffeeLake-S GT2 [UHD Graphics 630]",
        )
    ]
    assert hardware.mounts == [
        MountInfo(device="/dev/sda1", folder="/", type="ext4", options="rw,relatime"),
        MountInfo(device="/dev/sdb1", folder="/var/data", type="xfs", options="ro,noatime"),
    ]
    if made:
        assert hardware.host_devices == [
            HostDevice(path="/dev/ttyUSB0", device_type="character", major=188, minor=0)
        ]
    write(tmp_path, "sys/firmware/efi/runtime", "")
    assert collect(tmp_path).boot == Boot(current_boot_mode="uefi", pxe_interface="eth0")


def test_the_whole_inventory_of_this_machine_fits_a_heartbeat() -> None:
    hardware = collect()
    assert hardware.boot is not None
    assert hardware.boot.current_boot_mode in ("uefi", "bios", "")
    assert hardware.host_devices is not None
    assert "/dev/null" in {d.path for d in hardware.host_devices}
    assert hardware.mounts is not None
    assert len(encode_fragment(hardware)) < 64 * 1024

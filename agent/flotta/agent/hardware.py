"""Hardware inventory from /proc, /sys, /dev and DMI, without external tools.

Parsers are pure functions over file contents; :func:`collect` reads the files under a root
(``/`` on a device, a sample tree in tests). Unreadable files leave fields empty. Every
section of upstream Flotta's inventory is filled in: ``boot`` (UEFI or BIOS, and the PXE
interface from the kernel's ``BOOTIF=``), ``gpus`` (DRM cards and PCI display controllers,
names from ``pci.ids`` when the system has it), ``hostDevices`` (the character and block
device files under /dev, as upstream listed them, at most :data:`MAX_HOST_DEVICES`) and
``mounts`` (filesystems on block devices, without container storage, at most
:data:`MAX_MOUNTS`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import stat
import struct
from pathlib import Path

from flotta.agent.telemetry.procfs import parse_mounts
from flotta.schemas.codec import to_builtins
from flotta.schemas.wire import Hardware
from flotta.schemas.wire.hardware import (
    Boot,
    Cpu,
    Disk,
    Gpu,
    HostDevice,
    Interface,
    Memory,
    MountInfo,
    OsRelease,
    SystemVendor,
)

SECTOR = 512
SKIPPED_BLOCK_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "sr", "nbd")
VIRTUAL_VENDORS = ("qemu", "kvm", "vmware", "virtualbox", "xen", "microsoft corporation", "bochs")
SIOCGIFADDR = 0x8915
# Bounds that keep a heartbeat or an enrolment request well inside its 128 KiB.
MAX_HOST_DEVICES = 256
MAX_MOUNTS = 64
MAX_GPUS = 16
# /dev folders of kernel-managed pseudo devices that workloads do not ask for (as runc skips)
SKIPPED_DEV_DIRS = ("pts", "shm", "mqueue", "hugepages", "fd", ".lxc", ".lxd-mounts", ".udev")
PCI_IDS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids")
DRM_CARD = re.compile(r"^card[0-9]+$")
X86 = ("x86_64", "i386", "i486", "i586", "i686")


def parse_key_values(text: str, separator: str = ":") -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        key, found, value = line.partition(separator)
        if found:
            pairs.append((key.strip(), value.strip()))
    return pairs


def parse_cpuinfo(text: str, *, architecture: str = "") -> Cpu:
    """x86 (``model name``, ``flags``, ``cpu MHz``) and ARM (``Features``, ``Model``)."""
    count = 0
    first: dict[str, str] = {}
    for key, value in parse_key_values(text):
        lowered = key.lower()
        if lowered == "processor" and value.isdigit():
            count += 1
        first.setdefault(lowered, value)
    model = next(
        (
            first[key]
            for key in ("model name", "cpu model", "hardware", "model")
            if first.get(key) and not first[key].isdigit()
        ),
        "",
    )
    flags = (first.get("flags") or first.get("features") or "").split()
    frequency = 0.0
    with contextlib.suppress(ValueError):
        frequency = float(first.get("cpu mhz", "0"))
    return Cpu(
        architecture=architecture,
        model_name=model,
        count=count,
        frequency=frequency,
        flags=flags,
    )


def parse_meminfo(text: str) -> Memory:
    values = dict(parse_key_values(text))
    total = _kib(values.get("MemTotal", ""))
    return Memory(physical_bytes=total, usable_bytes=total)


def _kib(value: str) -> int:
    number = value.split()[0] if value.split() else ""
    return int(number) * 1024 if number.isdigit() else 0


def parse_os_release(text: str, *, kernel: str = "") -> OsRelease:
    values = {}
    for key, value in parse_key_values(text, "="):
        values[key] = value.strip().strip('"').strip("'")
    return OsRelease(
        id=values.get("ID", ""),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
        kernel=kernel,
    )


def system_vendor(
    manufacturer: str, product: str, serial: str, *, hypervisor_flag: bool
) -> SystemVendor:
    lowered = f"{manufacturer} {product}".lower()
    return SystemVendor(
        manufacturer=manufacturer,
        product_name=product,
        serial_number=serial,
        virtual=hypervisor_flag or any(name in lowered for name in VIRTUAL_VENDORS),
    )


def parse_if_inet6(text: str) -> dict[str, list[str]]:
    """``/proc/net/if_inet6``: interface -> IPv6 addresses with prefix length."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6 or len(fields[0]) != 32:
            continue
        groups = [fields[0][i : i + 4] for i in range(0, 32, 4)]
        try:
            address = socket.inet_ntop(socket.AF_INET6, bytes.fromhex("".join(groups)))
            prefix = int(fields[2], 16)
        except ValueError:
            continue
        found.setdefault(fields[5], []).append(f"{address}/{prefix}")
    return found


def parse_bootif(cmdline: str) -> str:
    """The MAC address of the PXE boot interface from ``BOOTIF=01-aa-bb-..`` ("" if none)."""
    for word in cmdline.split():
        key, _, value = word.partition("=")
        if key == "BOOTIF" and value:
            parts = value.lower().split("-")
            if len(parts) == 7:  # hardware type first (01: Ethernet)
                parts = parts[1:]
            return ":".join(parts)
    return ""


def pci_names(text: str, vendor_id: str, device_id: str) -> tuple[str, str]:
    """(vendor name, device name) from the text of a ``pci.ids`` file ("" when unknown)."""
    vendor = device = ""
    in_vendor = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            if in_vendor:
                break
            code, _, name = line.partition("  ")
            in_vendor = code.lower() == vendor_id
            if in_vendor:
                vendor = name.strip()
        elif in_vendor and not line.startswith("\t\t"):
            code, _, name = line[1:].partition("  ")
            if code.lower() == device_id:
                device = name.strip()
                break
    return vendor, device


# ---- reading the files -------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    text = _read(path)
    try:
        return int(text)
    except ValueError:
        return 0


def _ipv4(name: str) -> list[str]:
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        packed = struct.pack("256s", name.encode()[:15])
        answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, packed)
        return [socket.inet_ntoa(answer[20:24])]
    return []


def collect_interfaces(root: Path, *, read_addresses: bool) -> list[Interface]:
    base = root / "sys/class/net"
    ipv6 = parse_if_inet6(_read(root / "proc/net/if_inet6"))
    interfaces = []
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        name = entry.name
        if name == "lo":
            continue
        interfaces.append(
            Interface(
                name=name,
                mac_address=_read(entry / "address"),
                mtu=_read_int(entry / "mtu"),
                has_carrier=_read(entry / "carrier") == "1",
                speed_mbps=max(0, _read_int(entry / "speed")),
                ipv4_addresses=_ipv4(name) if read_addresses else [],
                ipv6_addresses=ipv6.get(name, []),
            )
        )
    return interfaces


def collect_disks(root: Path) -> list[Disk]:
    base = root / "sys/block"
    disks = []
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        name = entry.name
        if name.startswith(SKIPPED_BLOCK_PREFIXES):
            continue
        rotational = _read(entry / "queue/rotational")
        disks.append(
            Disk(
                name=name,
                path=f"/dev/{name}",
                drive_type="HDD" if rotational == "1" else "SSD" if rotational == "0" else "",
                size_bytes=_read_int(entry / "size") * SECTOR,
                model=_read(entry / "device/model"),
                vendor=_read(entry / "device/vendor"),
                serial=_read(entry / "device/serial"),
            )
        )
    return disks


def collect_boot(root: Path, *, architecture: str, interfaces: list[Interface]) -> Boot:
    if (root / "sys/firmware/efi").is_dir():
        mode = "uefi"
    elif architecture in X86:
        mode = "bios"
    else:
        mode = ""  # boards that boot from a device tree: neither
    mac = parse_bootif(_read(root / "proc/cmdline"))
    pxe = next((i.name for i in interfaces if mac and i.mac_address.lower() == mac), "")
    return Boot(current_boot_mode=mode, pxe_interface=pxe)


def _hex_id(path: Path) -> str:
    text = _read(path).lower()
    return text[2:] if text.startswith("0x") else text


def collect_gpus(root: Path) -> list[Gpu]:
    """DRM cards (``/sys/class/drm/cardN``) and PCI display controllers (class 0x03)."""
    devices: dict[str, Path] = {}
    drm = root / "sys/class/drm"
    for card in sorted(drm.iterdir()) if drm.is_dir() else []:
        if DRM_CARD.match(card.name) and (card / "device").exists():
            device = (card / "device").resolve()
            devices.setdefault(device.name, device)
    pci = root / "sys/bus/pci/devices"
    for device in sorted(pci.iterdir()) if pci.is_dir() else []:
        if _read(device / "class").lower().startswith("0x03"):
            devices.setdefault(device.name, device)
    ids = next((text for path in PCI_IDS if (text := _read(root / path))), "")
    gpus = []
    for address, device in sorted(devices.items())[:MAX_GPUS]:
        vendor_id, device_id = _hex_id(device / "vendor"), _hex_id(device / "device")
        vendor, name = pci_names(ids, vendor_id, device_id) if ids and vendor_id else ("", "")
        driver = device / "driver"
        gpus.append(
            Gpu(
                address=address,
                vendor_id=vendor_id,
                device_id=device_id,
                vendor=vendor,
                name=name or (driver.resolve().name if driver.exists() else ""),
            )
        )
    return gpus


def collect_host_devices(root: Path) -> list[HostDevice]:
    """Character and block device files under /dev (not followed through symlinks)."""
    found: list[HostDevice] = []
    for folder, subfolders, files in os.walk(root / "dev"):
        base = Path(folder)
        if base == root / "dev":
            subfolders[:] = [d for d in subfolders if d not in SKIPPED_DEV_DIRS]
        subfolders.sort()
        for name in sorted(files):
            path = base / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISCHR(info.st_mode):
                kind = "character"
            elif stat.S_ISBLK(info.st_mode):
                kind = "block"
            else:
                continue
            found.append(
                HostDevice(
                    path="/" + str(path.relative_to(root)),
                    device_type=kind,
                    owner=info.st_uid,
                    group=info.st_gid,
                    major=os.major(info.st_rdev),
                    minor=os.minor(info.st_rdev),
                )
            )
    found.sort(key=lambda device: device.path)
    return found[:MAX_HOST_DEVICES]


def collect_mounts(root: Path) -> list[MountInfo]:
    """Filesystems on block devices (a source under /dev), as upstream's ``mounts`` describe
    them; tmpfs, overlays and other sources without a device are left out."""
    mounts = parse_mounts(_read(root / "proc/self/mounts"))
    return [
        MountInfo(device=m.device, folder=m.mountpoint, type=m.fstype, options=m.options)
        for m in mounts
        if m.device.startswith("/dev/")
    ][:MAX_MOUNTS]


def collect(root: Path = Path("/")) -> Hardware:
    """The whole inventory; ``root`` other than ``/`` skips reading live IPv4 addresses."""
    live = root == Path("/")
    kernel = _read(root / "proc/sys/kernel/osrelease")
    architecture = os.uname().machine if live else _read(root / "arch")
    cpu = parse_cpuinfo(_read(root / "proc/cpuinfo"), architecture=architecture)
    dmi = root / "sys/class/dmi/id"
    manufacturer = _read(dmi / "sys_vendor")
    product = _read(dmi / "product_name") or _read(root / "proc/device-tree/model").strip("\0")
    serial = _read(dmi / "product_serial") or _read(root / "proc/device-tree/serial-number").strip(
        "\0"
    )
    os_release = _read(root / "etc/os-release") or _read(root / "usr/lib/os-release")
    interfaces = collect_interfaces(root, read_addresses=live)
    return Hardware(
        boot=collect_boot(root, architecture=architecture, interfaces=interfaces),
        cpu=cpu,
        memory=parse_meminfo(_read(root / "proc/meminfo")),
        disks=collect_disks(root),
        gpus=collect_gpus(root),
        interfaces=interfaces,
        host_devices=collect_host_devices(root),
        mounts=collect_mounts(root),
        system_vendor=system_vendor(
            manufacturer, product, serial, hypervisor_flag="hypervisor" in cpu.flags
        ),
        hostname=_read(root / "proc/sys/kernel/hostname"),
        os_release=parse_os_release(os_release, kernel=kernel),
    )


# ---- full, then deltas -------------------------------------------------------------------


def sections(hardware: Hardware) -> dict[str, object]:
    """The inventory's sections that are present, as their wire documents."""
    return {
        name: to_builtins(getattr(hardware, name))
        for name in hardware.__struct_fields__
        if getattr(hardware, name) is not None
    }


def changed_sections(previous: Hardware, current: Hardware) -> Hardware | None:
    """The sections of ``current`` that differ from ``previous``; None when nothing did."""
    before = sections(previous)
    after = sections(current)
    changed = [name for name, value in after.items() if before.get(name) != value]
    if not changed:
        return None
    return Hardware(**{name: getattr(current, name) for name in changed})

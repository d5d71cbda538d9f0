"""The hardware inventory a device reports (upstream Flotta's HardwareInfo field names), as
heartbeats and enrolment requests carry it: the one definition of its fields. The resources
store these structs as they are (EdgeDevice ``status.hardware``, through
:mod:`flotta.schemas.crd.hardware`), so a field added here is in the CRDs after ``make crds``
(its docstring is its description there)."""

from __future__ import annotations

import msgspec

from flotta.schemas.wire.common import ApiStruct, Count, Integer


class Boot(ApiStruct, frozen=True, kw_only=True):
    """How the device booted."""

    current_boot_mode: str = ""
    """The firmware boot mode, for example uefi or bios."""
    pxe_interface: str = ""
    """The network interface the device booted from over PXE, if it did."""


class Cpu(ApiStruct, frozen=True, kw_only=True):
    """The device's processors."""

    architecture: str = ""
    """The CPU architecture, for example x86_64 or aarch64; copied into the
    device.cpu-architecture label."""
    model_name: str = ""
    """The CPU model as the processor names itself; copied into the device.cpu-model label."""
    count: Count = 0
    """The number of logical CPUs."""
    frequency: float = 0.0
    """The clock frequency in MHz."""
    flags: list[str] = msgspec.field(default_factory=list)
    """The CPU feature flags (as in /proc/cpuinfo)."""


class Disk(ApiStruct, frozen=True, kw_only=True):
    """One disk of the device."""

    name: str = ""
    """The kernel's name for the disk, for example sda or mmcblk0."""
    path: str = ""
    """The disk's device file, for example /dev/sda."""
    drive_type: str = ""
    """The kind of drive, for example HDD, SSD or ODD."""
    size_bytes: Count = 0
    """The disk's size in bytes."""
    model: str = ""
    """The disk's model name."""
    vendor: str = ""
    """The disk's vendor."""
    serial: str = ""
    """The disk's serial number."""
    bootable: bool = False
    """Whether the disk holds a boot loader."""
    by_id: str = ""
    """The disk's stable /dev/disk/by-id path."""
    by_path: str = ""
    """The disk's /dev/disk/by-path path (by the bus it is attached to)."""
    wwn: str = ""
    """The disk's World Wide Name."""


class Gpu(ApiStruct, frozen=True, kw_only=True):
    """One graphics processor of the device."""

    address: str = ""
    """The GPU's bus address (for example its PCI address)."""
    device_id: str = ""
    """The GPU's device identifier (PCI device ID)."""
    name: str = ""
    """The GPU's product name."""
    vendor: str = ""
    """The GPU vendor's name."""
    vendor_id: str = ""
    """The GPU vendor's identifier (PCI vendor ID)."""


class Interface(ApiStruct, frozen=True, kw_only=True):
    """One network interface of the device."""

    name: str = ""
    """The interface's name, for example eth0."""
    mac_address: str = ""
    """The interface's MAC address."""
    ipv4_addresses: list[str] = msgspec.field(default_factory=list)
    """The interface's IPv4 addresses."""
    ipv6_addresses: list[str] = msgspec.field(default_factory=list)
    """The interface's IPv6 addresses."""
    flags: list[str] = msgspec.field(default_factory=list)
    """The interface's flags, for example up or broadcast."""
    has_carrier: bool = False
    """Whether the link is up (a cable or radio link is connected)."""
    mtu: Count = 0
    """The interface's maximum transmission unit in bytes."""
    speed_mbps: Count = 0
    """The link speed in Mbit/s; 0 when unknown."""
    vendor: str = ""
    """The network adapter's vendor."""
    product: str = ""
    """The network adapter's product name or identifier."""
    biosdevname: str = ""
    """The name the firmware gives the interface (biosdevname), if any."""


class Memory(ApiStruct, frozen=True, kw_only=True):
    """The device's memory."""

    physical_bytes: Count = 0
    """The installed memory in bytes."""
    usable_bytes: Count = 0
    """The memory the operating system can use, in bytes."""


class SystemVendor(ApiStruct, frozen=True, kw_only=True):
    """Who made the device; copied into the device.system-* labels."""

    manufacturer: str = ""
    """The system's manufacturer; copied into the device.system-manufacturer label."""
    product_name: str = ""
    """The system's product name; copied into the device.system-product label."""
    serial_number: str = ""
    """The system's serial number; copied into the device.system-serial label."""
    virtual: bool = False
    """Whether the device is a virtual machine."""


class HostDevice(ApiStruct, frozen=True, kw_only=True):
    """One device file on the host (under /dev) that workloads could use."""

    path: str = ""
    """The device file's path, for example /dev/ttyUSB0."""
    device_type: str = ""
    """The kind of device file: block or character."""
    owner: Integer = 0
    """The numeric user ID owning the device file."""
    group: Integer = 0
    """The numeric group ID of the device file."""
    major: Integer = 0
    """The device's major number."""
    minor: Integer = 0
    """The device's minor number."""


class MountInfo(ApiStruct, frozen=True, kw_only=True):
    """One filesystem mounted on the device."""

    device: str = ""
    """The mounted device or source."""
    folder: str = ""
    """Where it is mounted."""
    type: str = ""
    """The filesystem type."""
    options: str = ""
    """The mount options, comma-separated."""


class OsRelease(ApiStruct, frozen=True, kw_only=True):
    """The operating system the device runs (from /etc/os-release and the kernel)."""

    id: str = ""
    """The operating system's ID, for example fedora or rhel."""
    version_id: str = ""
    """The operating system's version, for example 39."""
    pretty_name: str = ""
    """The operating system's name and version for people."""
    kernel: str = ""
    """The running kernel's release."""


class Hardware(ApiStruct, frozen=True, kw_only=True):
    """The device's hardware inventory; sections it does not report are left out, and fields
    beyond these are ignored."""

    boot: Boot | None = None
    """How the device booted."""
    cpu: Cpu | None = None
    """The device's processors."""
    disks: list[Disk] | None = None
    """The device's disks."""
    gpus: list[Gpu] | None = None
    """The device's graphics processors."""
    hostname: str | None = None
    """The device's host name; copied into the device.hostname label."""
    interfaces: list[Interface] | None = None
    """The device's network interfaces."""
    memory: Memory | None = None
    """The device's memory."""
    system_vendor: SystemVendor | None = None
    """Who made the device, its product name and serial number."""
    host_devices: list[HostDevice] | None = None
    """Device files on the host that workloads could use."""
    mounts: list[MountInfo] | None = None
    """The filesystems mounted on the device."""
    os_release: OsRelease | None = None
    """The operating system and kernel the device runs."""

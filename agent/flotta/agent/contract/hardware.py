"""The hardware inventory a device reports (upstream Flotta's HardwareInfo field names)."""

from __future__ import annotations

import msgspec

from flotta.agent.contract.base import ApiStruct, Integer, NonNegative


class Boot(ApiStruct, frozen=True, kw_only=True):
    current_boot_mode: str = ""
    pxe_interface: str = ""


class Cpu(ApiStruct, frozen=True, kw_only=True):
    architecture: str = ""
    model_name: str = ""
    count: NonNegative = 0
    frequency: float = 0.0
    flags: list[str] = msgspec.field(default_factory=list)


class Disk(ApiStruct, frozen=True, kw_only=True):
    name: str = ""
    path: str = ""
    drive_type: str = ""
    size_bytes: NonNegative = 0
    model: str = ""
    vendor: str = ""
    serial: str = ""
    bootable: bool = False
    by_id: str = ""
    by_path: str = ""
    wwn: str = ""


class Gpu(ApiStruct, frozen=True, kw_only=True):
    address: str = ""
    device_id: str = ""
    name: str = ""
    vendor: str = ""
    vendor_id: str = ""


class Interface(ApiStruct, frozen=True, kw_only=True):
    name: str = ""
    mac_address: str = ""
    ipv4_addresses: list[str] = msgspec.field(default_factory=list)
    ipv6_addresses: list[str] = msgspec.field(default_factory=list)
    flags: list[str] = msgspec.field(default_factory=list)
    has_carrier: bool = False
    mtu: NonNegative = 0
    speed_mbps: NonNegative = 0
    vendor: str = ""
    product: str = ""
    biosdevname: str = ""


class Memory(ApiStruct, frozen=True, kw_only=True):
    physical_bytes: NonNegative = 0
    usable_bytes: NonNegative = 0


class SystemVendor(ApiStruct, frozen=True, kw_only=True):
    manufacturer: str = ""
    product_name: str = ""
    serial_number: str = ""
    virtual: bool = False


class HostDevice(ApiStruct, frozen=True, kw_only=True):
    path: str = ""
    device_type: str = ""
    owner: Integer = 0
    group: Integer = 0
    major: Integer = 0
    minor: Integer = 0


class MountInfo(ApiStruct, frozen=True, kw_only=True):
    device: str = ""
    folder: str = ""
    type: str = ""
    options: str = ""


class OsRelease(ApiStruct, frozen=True, kw_only=True):
    id: str = ""
    version_id: str = ""
    pretty_name: str = ""
    kernel: str = ""


class Hardware(ApiStruct, frozen=True, kw_only=True):
    boot: Boot | None = None
    cpu: Cpu | None = None
    disks: list[Disk] | None = None
    gpus: list[Gpu] | None = None
    hostname: str | None = None
    interfaces: list[Interface] | None = None
    memory: Memory | None = None
    system_vendor: SystemVendor | None = None
    host_devices: list[HostDevice] | None = None
    mounts: list[MountInfo] | None = None
    os_release: OsRelease | None = None

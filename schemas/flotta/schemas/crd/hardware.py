"""Hardware inventory reported by a device (upstream Flotta's HardwareInfo field names)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from flotta.schemas.base import ApiModel
from flotta.schemas.scalars import Count, Finite, Integer


class HardwareModel(ApiModel):
    # Inventories differ between boards; keep what a device reports beyond the known fields.
    model_config = ConfigDict(extra="allow")


class Boot(HardwareModel):
    current_boot_mode: str = ""
    pxe_interface: str = ""


class Cpu(HardwareModel):
    architecture: str = ""
    model_name: str = ""
    count: Count = 0
    frequency: Finite = 0.0
    flags: list[str] = Field(default_factory=list)


class Disk(HardwareModel):
    name: str = ""
    path: str = ""
    drive_type: str = ""
    size_bytes: Count = 0
    model: str = ""
    vendor: str = ""
    serial: str = ""
    bootable: bool = False
    by_id: str = ""
    by_path: str = ""
    wwn: str = ""


class Gpu(HardwareModel):
    address: str = ""
    device_id: str = ""
    name: str = ""
    vendor: str = ""
    vendor_id: str = ""


class Interface(HardwareModel):
    name: str = ""
    mac_address: str = ""
    ipv4_addresses: list[str] = Field(default_factory=list)
    ipv6_addresses: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    has_carrier: bool = False
    mtu: Count = 0
    speed_mbps: Count = 0
    vendor: str = ""
    product: str = ""
    biosdevname: str = ""


class Memory(HardwareModel):
    physical_bytes: Count = 0
    usable_bytes: Count = 0


class SystemVendor(HardwareModel):
    manufacturer: str = ""
    product_name: str = ""
    serial_number: str = ""
    virtual: bool = False


class HostDevice(HardwareModel):
    path: str = ""
    device_type: str = ""
    owner: Integer = 0
    group: Integer = 0
    major: Integer = 0
    minor: Integer = 0


class MountInfo(HardwareModel):
    device: str = ""
    folder: str = ""
    type: str = ""
    options: str = ""


class OsRelease(HardwareModel):
    id: str = ""
    version_id: str = ""
    pretty_name: str = ""
    kernel: str = ""


class Hardware(HardwareModel):
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

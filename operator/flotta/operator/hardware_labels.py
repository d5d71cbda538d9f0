"""Hardware labels on EdgeDevices (upstream names), from the reported inventory. Pure."""

from __future__ import annotations

import re

from flotta.schemas.wire.hardware import Hardware

HARDWARE_LABEL_PREFIX = "device."
_INVALID = re.compile(r"[^a-z0-9-_.]")
_MAX_VALUE = 63


def label_value(text: str) -> str:
    """Lower-cased, limited to ``[a-z0-9-_.]``, trimmed to a valid label value."""
    value = _INVALID.sub("", text.lower())[:_MAX_VALUE]
    return value.strip("-_.")


def hardware_labels(hardware: Hardware | None) -> dict[str, str]:
    if hardware is None:
        return {}
    raw = {
        "device.hostname": hardware.hostname or "",
        "device.cpu-architecture": hardware.cpu.architecture if hardware.cpu else "",
        "device.cpu-model": hardware.cpu.model_name if hardware.cpu else "",
        "device.system-manufacturer": (
            hardware.system_vendor.manufacturer if hardware.system_vendor else ""
        ),
        "device.system-product": (
            hardware.system_vendor.product_name if hardware.system_vendor else ""
        ),
        "device.system-serial": (
            hardware.system_vendor.serial_number if hardware.system_vendor else ""
        ),
    }
    return {key: value for key, text in raw.items() if (value := label_value(text))}

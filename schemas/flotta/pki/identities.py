"""Certificate identities (CN = MQTT username) and their roles.

A device's CN is its device id (a DNS-1123 label, never a colon); every other identity
carries a role prefix with a colon, so no device id can ever take another role's privileges.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flotta.pki.errors import IdentityError
from flotta.schemas.topics import (
    BOOTSTRAP_PREFIX,
    BRIDGE_IDENTITY,
    DEVICE_ID_PATTERN,
    OBSERVER_PREFIX,
    OPERATOR_IDENTITY,
)


class Role(enum.StrEnum):
    DEVICE = "device"
    OPERATOR = "operator"
    BRIDGE = "bridge"
    OBSERVER = "observer"
    BOOTSTRAP = "bootstrap"


@dataclass(frozen=True, slots=True)
class Identity:
    """A parsed CN: its role and, for devices, observers and bootstrap batches, a name."""

    role: Role
    name: str

    @property
    def common_name(self) -> str:
        match self.role:
            case Role.DEVICE:
                return self.name
            case Role.OPERATOR:
                return OPERATOR_IDENTITY
            case Role.BRIDGE:
                return BRIDGE_IDENTITY
            case Role.OBSERVER:
                return OBSERVER_PREFIX + self.name
            case Role.BOOTSTRAP:
                return BOOTSTRAP_PREFIX + self.name


def _label(value: str, what: str) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(value):
        raise IdentityError(
            f"{what} {value!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    return value


def parse_identity(common_name: str) -> Identity:
    """Classify a CN; raise IdentityError for anything outside the contract."""
    if common_name == OPERATOR_IDENTITY:
        return Identity(Role.OPERATOR, "operator")
    if common_name == BRIDGE_IDENTITY:
        return Identity(Role.BRIDGE, "bridge")
    if common_name.startswith(OBSERVER_PREFIX):
        return Identity(Role.OBSERVER, _label(common_name[len(OBSERVER_PREFIX) :], "observer name"))
    if common_name.startswith(BOOTSTRAP_PREFIX):
        return Identity(
            Role.BOOTSTRAP, _label(common_name[len(BOOTSTRAP_PREFIX) :], "bootstrap batch")
        )
    if ":" in common_name:
        raise IdentityError(
            f"identity {common_name!r} is not one of internal:operator, internal:bridge, "
            "observer:NAME, bootstrap:BATCH or a device id"
        )
    return Identity(Role.DEVICE, _label(common_name, "device id"))


def namespace_label(namespace: str) -> str:
    """A Kubernetes namespace as it goes into a device certificate's OU."""
    return _label(namespace, "namespace")


def device_identity(device_id: str) -> Identity:
    return Identity(Role.DEVICE, _label(device_id, "device id"))


def observer_identity(name: str) -> Identity:
    return Identity(Role.OBSERVER, _label(name, "observer name"))


def bootstrap_identity(batch: str) -> Identity:
    return Identity(Role.BOOTSTRAP, _label(batch, "bootstrap batch"))


def file_stem(identity: Identity) -> str:
    """A file name for an identity's certificate and key (no colon)."""
    return identity.common_name.replace(":", "-")

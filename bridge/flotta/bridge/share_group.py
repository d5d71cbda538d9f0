"""The name of the bridge replicas' shared-subscription group, which must stay secret.

Mosquitto 2.0 does not check SUBSCRIBE against the ACL, so any certificate holder (a device,
the shared bootstrap certificate) can join ``$share/<group>/...``. The broker then routes a
share of every device's messages to that member and drops them there, because its ACL forbids
it to read them: with a known group name, nine members with the bootstrap certificate took
nine tenths of the fleet's heartbeats. A group name nobody else knows keeps the group to the
bridge replicas; a member of any other group only gets its own copies, which the ACL drops.

The name comes from the environment (``FLOTTA_BRIDGE_GROUP``: a Kubernetes Secret, or the
one-machine stack's state), never from the command line, which every local user can read.
"""

from __future__ import annotations

import re
import secrets

GROUP_ENV = "FLOTTA_BRIDGE_GROUP"
WELL_KNOWN_GROUP = "flotta-bridge"
MIN_SECRET_CHARS = 16
_GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class ShareGroupError(ValueError):
    """A group name that cannot be used in a shared subscription."""


def checked_group(name: str) -> str:
    if not _GROUP.match(name):
        raise ShareGroupError(
            f"shared-subscription group {name!r}: use 1-128 letters, digits, '_', '.' or '-'"
        )
    return name


def is_guessable(name: str) -> bool:
    return name == WELL_KNOWN_GROUP or len(name) < MIN_SECRET_CHARS + len("flotta-bridge-")


def new_group() -> str:
    """A fresh secret group name for a new installation."""
    return f"flotta-bridge-{secrets.token_hex(MIN_SECRET_CHARS)}"

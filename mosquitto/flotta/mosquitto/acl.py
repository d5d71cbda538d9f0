"""Render the least-privilege ACL file (Mosquitto 2.0 ``acl_file``): a pure function.

How Mosquitto 2.0 evaluates it (``src/security_default.c``; verified by tests):

1. The client's own ``user`` section (matched on the username = certificate CN) first.
   Within it every ``deny`` line is tried before any allow line (whatever the file order);
   the first line whose topic matches decides: ``deny`` refuses, an allow line with the
   right access grants. An allow line with the wrong access (read for a write) falls through.
2. Then every ``pattern`` line, for *every* client, with ``%u`` (username) and ``%c``
   (client id) substituted; again all pattern denies first. Clients whose username or client
   id contains ``+`` or ``#`` are refused here.
3. Nothing matched: refused.

SUBSCRIBE itself is never checked; every message delivered (retained ones included) is
checked for read access on its real topic. So ``$share/<group>/flotta/devices/+/status``
works with the plain topic lines below, and a device that subscribes to ``#`` gets only its
own topics. A will message is checked for write access when the broker publishes it.

Consequences for the design:

- Device privileges are patterns on ``%u`` (the CN, which the device cannot choose), never
  on ``%c``: a client id equal to another device id gains nothing.
- Enrolment needs ``%c`` (the bootstrap CN is shared by a batch), so those pattern lines
  apply to every client. Named identities (operator, bridge, observers, listed bootstrap
  batches) get user-section denies that override them. Devices are not listed by name, so
  they are only kept out of the enrolment topics of their own id (``pattern deny
  flotta/enrol/%u/#``); a device that connects with a forged client id can reach that id's
  enrolment topics, which is what any holder of a bootstrap certificate can do anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flotta.pki.identities import bootstrap_identity, observer_identity
from flotta.schemas.topics import (
    BRIDGE_IDENTITY,
    OPERATOR_IDENTITY,
    TELEMETRY_KINDS,
    TOPIC_ROOT,
    DeviceTopic,
    EnrolTopic,
)

DEVICES = f"{TOPIC_ROOT}/devices"
ENROL = f"{TOPIC_ROOT}/enrol"

DEVICE_READS = (DeviceTopic.DESIRED, DeviceTopic.CERTIFICATE, DeviceTopic.RECEIPTS)
DEVICE_WRITES = (*TELEMETRY_KINDS, DeviceTopic.CSR)
RETAIN_CLEARED = tuple(kind for kind in TELEMETRY_KINDS if kind is not DeviceTopic.CONNECTION)


@dataclass(frozen=True, slots=True)
class AclSettings:
    """Named identities that need a user section: observers and known bootstrap batches."""

    observers: tuple[str, ...] = ()
    bootstrap_batches: tuple[str, ...] = ()

    def with_observer(self, name: str) -> AclSettings:
        observer_identity(name)  # raises IdentityError for a bad name
        return AclSettings(_add(self.observers, name), self.bootstrap_batches)

    def with_bootstrap_batch(self, batch: str) -> AclSettings:
        bootstrap_identity(batch)
        return AclSettings(self.observers, _add(self.bootstrap_batches, batch))


def _add(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    return names if name in names else tuple(sorted((*names, name)))


def _all(kind: DeviceTopic | str) -> str:
    return f"{DEVICES}/+/{kind}"


def _section(username: str, lines: Iterable[str], comment: str) -> list[str]:
    return [f"# {comment}", f"user {username}", *lines, ""]


def _no_pattern_privileges(username: str) -> list[str]:
    """Denies that cancel what the global patterns would give this named identity."""
    return [f"topic deny {DEVICES}/{username}/#", f"topic deny {ENROL}/#"]


def render_acl(settings: AclSettings = AclSettings()) -> str:
    """The ACL file text."""
    out = [
        "# Flotta ACL (contract v1) for Mosquitto 2.0.",
        "# Rendered by flotta.mosquitto.acl; regenerate with 'flotta broker render'.",
        "# Order of evaluation: the client's user section (denies first), then all patterns",
        "# (denies first), else refused. Subscriptions are not checked; each delivered message",
        "# is checked for read on its real topic (so $share/... subscriptions work).",
        "",
    ]
    out += _section(
        OPERATOR_IDENTITY,
        [
            f"topic deny {DEVICES}/{OPERATOR_IDENTITY}/#",
            f"topic write {_all(DeviceTopic.DESIRED)}",
            f"topic write {_all(DeviceTopic.CERTIFICATE)}",
            f"topic readwrite {_all(DeviceTopic.CONNECTION)}",
            f"topic read {_all(DeviceTopic.STATUS)}",
            f"topic read {_all(DeviceTopic.CSR)}",
            f"topic readwrite {ENROL}/+/{EnrolTopic.REQUEST}",
            f"topic readwrite {ENROL}/+/{EnrolTopic.ANSWER}",
        ],
        "operator: desired state, certificates, enrolment; clears retained connection",
    )
    out += _section(
        BRIDGE_IDENTITY,
        [
            *_no_pattern_privileges(BRIDGE_IDENTITY),
            *(f"topic read {_all(kind)}" for kind in TELEMETRY_KINDS),
            f"topic write {_all(DeviceTopic.RECEIPTS)}",
            # clears what a device leaves retained on its reports (an empty retained message)
            *(f"topic write {_all(kind)}" for kind in RETAIN_CLEARED),
        ],
        "bridge: reads device reports (shared subscriptions), confirms stored batches",
    )
    for name in settings.observers:
        username = observer_identity(name).common_name
        out += _section(
            username,
            [
                *_no_pattern_privileges(username),
                *(f"topic read {_all(kind)}" for kind in TELEMETRY_KINDS),
            ],
            "observer: reads every device's reports, writes nothing",
        )
    for batch in settings.bootstrap_batches:
        username = bootstrap_identity(batch).common_name
        out += _section(
            username,
            [f"topic deny {DEVICES}/#"],
            "bootstrap batch: enrolment topics of its client id only (patterns below)",
        )
    out += [
        "# Devices: username = CN = device id; only their own subtree.",
        *(f"pattern read {DEVICES}/%u/{kind}" for kind in DEVICE_READS),
        *(f"pattern write {DEVICES}/%u/{kind}" for kind in DEVICE_WRITES),
        "",
        "# Bootstrap certificates: the enrolment topics of the client id they connect with.",
        f"pattern write {ENROL}/%c/{EnrolTopic.REQUEST}",
        f"pattern read {ENROL}/%c/{EnrolTopic.ANSWER}",
        "# A device never uses the enrolment topics of its own id.",
        f"pattern deny {ENROL}/%u/#",
        "",
    ]
    return "\n".join(out)

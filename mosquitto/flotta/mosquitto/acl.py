"""Render the least-privilege ACL files (Mosquitto 2.0 ``acl_file``) of the fleet broker and
of the enrolment broker: pure functions.

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
  on ``%c``.
- Enrolment needs ``%c`` (the bootstrap CN is shared by a batch), so it lives on the
  enrolment broker (:func:`render_enrolment_acl`), whose client ids are a namespace of their
  own; the fleet broker gives a bootstrap certificate nothing.
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
    return [f"topic deny {DEVICES}/{username}/#"]


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
        ],
        "operator: desired state, certificates; clears retained connection",
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
            "bootstrap batch: nothing here (enrolment is on the enrolment broker)",
        )
    out += [
        "# Devices: username = CN = device id; only their own subtree.",
        *(f"pattern read {DEVICES}/%u/{kind}" for kind in DEVICE_READS),
        *(f"pattern write {DEVICES}/%u/{kind}" for kind in DEVICE_WRITES),
        "",
    ]
    return "\n".join(out)


def render_enrolment_acl() -> str:
    """The enrolment broker's ACL file: the operator answers; every other client reaches the
    enrolment topics of the client id it connects with, and nothing else."""
    out = [
        "# Flotta enrolment broker ACL (contract v1) for Mosquitto 2.0.",
        "# Rendered by flotta.mosquitto.acl; regenerate with 'flotta broker render'.",
        "",
    ]
    out += _section(
        OPERATOR_IDENTITY,
        [
            f"topic readwrite {ENROL}/+/{EnrolTopic.REQUEST}",
            f"topic readwrite {ENROL}/+/{EnrolTopic.ANSWER}",
        ],
        "operator: reads enrolment requests, answers them",
    )
    out += [
        "# Bootstrap certificates (a batch shares one): the topics of the client id they chose.",
        f"pattern write {ENROL}/%c/{EnrolTopic.REQUEST}",
        f"pattern read {ENROL}/%c/{EnrolTopic.ANSWER}",
        "",
    ]
    return "\n".join(out)

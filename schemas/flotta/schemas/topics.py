"""MQTT topic names (contract v1) and NATS subjects: pure builders and parsers.

Device ids are Kubernetes object names restricted to DNS-1123 labels (no dots), so that they
are single tokens in both MQTT topics and NATS subjects. Identities that are not devices use
a CN with a colon (``internal:operator``, ``bootstrap:batch-1``), which no device id can have.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from flotta.schemas.errors import TopicError

TOPIC_ROOT = "flotta"
DEVICE_ID_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NAMESPACE_PATTERN = DEVICE_ID_PATTERN


class DeviceTopic(enum.StrEnum):
    """The per-device topics under ``flotta/devices/{id}/``."""

    DESIRED = "desired"  # operator -> device, QoS 1, retained
    STATUS = "status"  # device -> bridge, heartbeat
    CONNECTION = "connection"  # device birth / broker will, retained
    EVENTS = "events"  # device -> bridge
    METRICS = "metrics"  # device -> bridge, batches with a sequence number
    LOGS = "logs"  # device -> bridge, batches with a sequence number
    CSR = "csr"  # device -> operator: certificate renewal request (contract v1 addition)
    CERTIFICATE = "certificate"  # operator -> device: renewed certificate (contract v1 addition)
    RECEIPTS = "receipts"  # bridge -> device: metrics/logs batches stored (contract v1 addition)


class EnrolTopic(enum.StrEnum):
    """The enrolment topics under ``flotta/enrol/{id}/``, reached with a bootstrap certificate."""

    REQUEST = "request"  # device -> operator
    ANSWER = "answer"  # operator -> device, retained until the device has its certificate


# Kinds that the bridge forwards to NATS, in the order of the NATS contract.
TELEMETRY_KINDS = (
    DeviceTopic.STATUS,
    DeviceTopic.CONNECTION,
    DeviceTopic.EVENTS,
    DeviceTopic.METRICS,
    DeviceTopic.LOGS,
)


def validate_device_id(device_id: str) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise TopicError(
            f"device id {device_id!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63 characters, no dots)"
        )
    return device_id


def validate_namespace(namespace: str) -> str:
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise TopicError(f"namespace {namespace!r} is not a DNS-1123 label")
    return namespace


def device_topic(device_id: str, kind: DeviceTopic) -> str:
    return f"{TOPIC_ROOT}/devices/{validate_device_id(device_id)}/{kind.value}"


def device_filter(kind: DeviceTopic) -> str:
    """Subscription filter for one kind of topic across every device."""
    return f"{TOPIC_ROOT}/devices/+/{kind.value}"


def shared_filter(group: str, kind: DeviceTopic) -> str:
    """MQTT v5 shared subscription so that bridge replicas split the fleet."""
    return f"$share/{group}/{device_filter(kind)}"


def enrol_topic(device_id: str, kind: EnrolTopic) -> str:
    return f"{TOPIC_ROOT}/enrol/{validate_device_id(device_id)}/{kind.value}"


@dataclass(frozen=True, slots=True)
class ParsedDeviceTopic:
    device_id: str
    kind: DeviceTopic


@dataclass(frozen=True, slots=True)
class ParsedEnrolTopic:
    device_id: str
    kind: EnrolTopic


def parse_device_topic(topic: str) -> ParsedDeviceTopic:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != "devices":
        raise TopicError(f"{topic!r} is not a device topic (flotta/devices/{{id}}/{{kind}})")
    try:
        kind = DeviceTopic(parts[3])
    except ValueError:
        raise TopicError(f"{topic!r}: unknown device topic kind {parts[3]!r}") from None
    return ParsedDeviceTopic(validate_device_id(parts[2]), kind)


def parse_enrol_topic(topic: str) -> ParsedEnrolTopic:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != "enrol":
        raise TopicError(f"{topic!r} is not an enrolment topic (flotta/enrol/{{id}}/{{kind}})")
    try:
        kind = EnrolTopic(parts[3])
    except ValueError:
        raise TopicError(f"{topic!r}: unknown enrolment topic kind {parts[3]!r}") from None
    return ParsedEnrolTopic(validate_device_id(parts[2]), kind)


# ---- NATS ---------------------------------------------------------------------------------

NATS_ROOT = "flotta.device"


def nats_subject(namespace: str, device_id: str, kind: DeviceTopic) -> str:
    if kind not in TELEMETRY_KINDS:
        raise TopicError(f"{kind.value!r} is not forwarded to NATS")
    return (
        f"{NATS_ROOT}.{validate_namespace(namespace)}.{validate_device_id(device_id)}.{kind.value}"
    )


@dataclass(frozen=True, slots=True)
class ParsedSubject:
    namespace: str
    device_id: str
    kind: DeviceTopic


def parse_nats_subject(subject: str) -> ParsedSubject:
    parts = subject.split(".")
    if len(parts) != 5 or f"{parts[0]}.{parts[1]}" != NATS_ROOT:
        raise TopicError(
            f"{subject!r} is not a device subject (flotta.device.{{ns}}.{{id}}.{{kind}})"
        )
    try:
        kind = DeviceTopic(parts[4])
    except ValueError:
        raise TopicError(f"{subject!r}: unknown kind {parts[4]!r}") from None
    if kind not in TELEMETRY_KINDS:
        raise TopicError(f"{subject!r}: {kind.value!r} is not forwarded to NATS")
    return ParsedSubject(validate_namespace(parts[2]), validate_device_id(parts[3]), kind)


def nats_filter(kinds: tuple[DeviceTopic, ...]) -> list[str]:
    """Stream subject filters for the given kinds across every namespace and device."""
    return [f"{NATS_ROOT}.*.*.{kind.value}" for kind in kinds]


# ---- Identities (certificate CN = MQTT username) ------------------------------------------

# Where each kind of client connects (TLS ports; a deployment may map them to others).
FLEET_PORT = 8883  # devices and observers: the fleet broker makes their CN their client id
ENROLMENT_PORT = 8884  # bootstrap certificates: the enrolment broker, a Mosquitto of its own
SERVICES_PORT = 8885  # the operator and the bridge: the fleet broker, never public

OPERATOR_IDENTITY = "internal:operator"
BRIDGE_IDENTITY = "internal:bridge"
OBSERVER_PREFIX = "observer:"
BOOTSTRAP_PREFIX = "bootstrap:"

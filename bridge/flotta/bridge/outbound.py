"""Device message -> NATS message: subject, ``Nats-Msg-Id`` and CloudEvents body. Pure.

The message id names the message for JetStream's de-duplication, so a message that crosses
MQTT twice lands once: metrics and logs batches by ``(stream, sequence)``, events by their
id, heartbeats and connection messages by their timestamp. It is also the CloudEvent id.
The payload was validated and is a JSON object; it goes into ``data`` as the device sent it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from flotta.schemas.cloudevents import envelope, rejection_envelope, to_bytes
from flotta.schemas.topics import DeviceTopic, nats_subject
from flotta.schemas.wire.common import Payload
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

REJECTED_SUBJECT = "flotta.bridge.rejected"
MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True, slots=True)
class Outbound:
    subject: str
    msg_id: str
    body: bytes


def message_id(device_id: str, kind: DeviceTopic, payload: Payload) -> str:
    if isinstance(payload, MetricsBatch | LogsBatch):
        return payload.message_id(device_id)
    if isinstance(payload, DeviceEvent):
        return f"{device_id}:events:{payload.id}"
    if isinstance(payload, StatusReport):
        return f"{device_id}:status:{payload.time.isoformat()}"
    if isinstance(payload, ConnectionState):
        return f"{device_id}:connection:{payload.state}:{payload.time.isoformat()}"
    raise TypeError(f"{type(payload).__name__} is not forwarded to NATS")


def to_nats(
    *,
    namespace: str,
    device_id: str,
    kind: DeviceTopic,
    payload: Payload,
    raw: bytes,
    now: datetime,
) -> Outbound:
    msg_id = message_id(device_id, kind, payload)
    event = envelope(
        event_id=msg_id,
        kind=kind,
        namespace=namespace,
        device_id=device_id,
        data=None,
        time=now,
    )
    del event["data"]
    head = json.dumps(event, separators=(",", ":")).encode()
    body = head[:-1] + b',"data":' + raw.strip() + b"}"
    return Outbound(nats_subject(namespace, device_id, kind), msg_id, body)


def rejection(*, topic: str, reason: str, size: int, now: datetime) -> Outbound:
    event_id = str(uuid.uuid4())
    body = to_bytes(
        rejection_envelope(event_id=event_id, topic=topic, reason=reason, size=size, time=now)
    )
    return Outbound(REJECTED_SUBJECT, event_id, body)

"""Device message -> NATS message: subject, ``Nats-Msg-Id`` and CloudEvents body. Pure.

The message id names the message for JetStream's de-duplication, so a message that crosses
MQTT twice lands once: metrics and logs batches by ``(stream, sequence)``, events by their
id, heartbeats and connection messages by their timestamp. It is also the CloudEvent id.
The payload was validated and is a JSON object; it goes into ``data`` as the device sent it.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=65536)
def _template(namespace: str, device_id: str, kind: DeviceTopic) -> tuple[str, bytes, bytes, bytes]:
    """The subject and the fixed parts of the envelope around its id and time: the bytes
    that :func:`~flotta.schemas.cloudevents.envelope` gives, built once per device and kind."""
    marker_id, marker_time = "\x00id\x00", "\x00time\x00"
    event = envelope(
        event_id=marker_id, kind=kind, namespace=namespace, device_id=device_id, data=None
    )
    event["time"] = marker_time
    del event["data"]
    text = json.dumps(event, separators=(",", ":"))
    quoted_id, quoted_time = json.dumps(marker_id), json.dumps(marker_time)
    head, rest = text.split(quoted_id)
    middle, tail = rest.split(quoted_time)
    tail = tail.removesuffix("}") + ',"data":'
    return nats_subject(namespace, device_id, kind), head.encode(), middle.encode(), tail.encode()


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
    subject, head, middle, tail = _template(namespace, device_id, kind)
    stamp = now.isoformat().replace("+00:00", "Z")
    body = b"".join(
        (
            head,
            json.dumps(msg_id).encode(),
            middle,
            json.dumps(stamp).encode(),
            tail,
            raw.strip(),
            b"}",
        )
    )
    return Outbound(subject, msg_id, body)


def rejection(*, topic: str, reason: str, size: int, now: datetime) -> Outbound:
    event_id = str(uuid.uuid4())
    body = to_bytes(
        rejection_envelope(event_id=event_id, topic=topic, reason=reason, size=size, time=now)
    )
    return Outbound(REJECTED_SUBJECT, event_id, body)

"""Device message -> NATS message: subject, ``Nats-Msg-Id`` and CloudEvents body. Pure.

The message id names the message for JetStream's de-duplication, so a message that crosses
MQTT twice lands once: metrics and logs batches by ``(stream, sequence)``, events by their
id, heartbeats and connection messages by their timestamp. It is also the CloudEvent id.
The payload was validated; ``data`` holds it encoded again from the validated value
(:func:`flotta.bridge.decoding.forwarded`).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

import msgspec

from flotta.bridge.decoding import Batch, Report
from flotta.schemas.cloud_events import SPEC_VERSION, event_type, rejection_envelope, to_bytes
from flotta.schemas.topics import DeviceTopic, nats_subject
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import StatusReport
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch

REJECTED_SUBJECT = "flotta.bridge.rejected"
MSG_ID_HEADER = "Nats-Msg-Id"
_HEAD = b'{"specversion":"%s","id":' % SPEC_VERSION.encode()


@dataclass(frozen=True, slots=True)
class Outbound:
    subject: str
    msg_id: str
    body: bytes


def message_id(device_id: str, kind: DeviceTopic, payload: Report) -> str:
    if isinstance(payload, Batch | MetricsBatch | LogsBatch):
        return payload.message_id(device_id)
    if isinstance(payload, DeviceEvent):
        return f"{device_id}:events:{payload.id}"
    if isinstance(payload, StatusReport):
        return f"{device_id}:status:{payload.time.isoformat()}"
    if isinstance(payload, ConnectionState):
        return f"{device_id}:connection:{payload.state}:{payload.time.isoformat()}"
    raise TypeError(f"{type(payload).__name__} is not forwarded to NATS")


_json = msgspec.json.encode  # a str as a JSON string (any valid escaping will do)
_DATA_TYPE = b',"datacontenttype":"application/json","data":'


@functools.lru_cache(maxsize=65536)
def _template(namespace: str, device_id: str, kind: DeviceTopic) -> tuple[str, bytes]:
    """The subject and the fixed part of the envelope between its id and its time, built once
    per device and kind: the fields :func:`~flotta.schemas.cloud_events.envelope` gives, in
    its order."""
    source = f"/flotta/namespaces/{namespace}/devices/{device_id}"
    middle = b"".join(
        (
            b',"source":',
            _json(source),
            b',"type":',
            _json(event_type(kind)),
            b',"subject":',
            _json(device_id),
            b',"time":',
        )
    )
    return nats_subject(namespace, device_id, kind), middle


def to_nats(
    *,
    namespace: str,
    device_id: str,
    kind: DeviceTopic,
    payload: Report,
    data: bytes,
    now: datetime,
) -> Outbound:
    msg_id = message_id(device_id, kind, payload)
    subject, middle = _template(namespace, device_id, kind)
    body = b"".join(
        (
            _HEAD,
            _json(msg_id),
            middle,
            _json(now.isoformat().replace("+00:00", "Z")),
            _DATA_TYPE,
            data,
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

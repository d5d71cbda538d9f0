"""CloudEvents 1.0 envelopes (structured JSON mode) for what the bridge sends to NATS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flotta.schemas.topics import DeviceTopic

SPEC_VERSION = "1.0"
TYPE_PREFIX = "io.flotta.device"
ERROR_TYPE = "io.flotta.bridge.rejected"


def event_type(kind: DeviceTopic) -> str:
    return f"{TYPE_PREFIX}.{kind.value}.v1"


def envelope(
    *,
    event_id: str,
    kind: DeviceTopic,
    namespace: str,
    device_id: str,
    data: Any,
    time: datetime | None = None,
) -> dict[str, Any]:
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": f"/flotta/namespaces/{namespace}/devices/{device_id}",
        "type": event_type(kind),
        "subject": device_id,
        "time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }


def rejection_envelope(
    *, event_id: str, topic: str, reason: str, size: int, time: datetime | None = None
) -> dict[str, Any]:
    """An error event for a device message that was not accepted."""
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": "/flotta/bridge",
        "type": ERROR_TYPE,
        "subject": topic,
        "time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {"topic": topic, "reason": reason, "size": size},
    }


def to_bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode()

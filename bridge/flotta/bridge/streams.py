"""JetStream streams the bridge creates (or updates) at start.

=================  ==========================================  ===========================
stream             subjects                                    retention (defaults)
=================  ==========================================  ===========================
FLOTTA_EVENTS      flotta.device.*.*.events,                   7 days, 1 GiB, 20 min
                   flotta.device.*.*.connection                duplicate window
FLOTTA_TELEMETRY   flotta.device.*.*.metrics,                  24 hours, 2 GiB, 20 min
                   flotta.device.*.*.logs                      duplicate window
FLOTTA_STATUS      flotta.device.*.*.status                    last 5 heartbeats per device,
                                                               1 hour, 256 MiB, 2 min window
FLOTTA_REJECTED    flotta.bridge.rejected                      24 hours, 64 MiB, 2 min window
=================  ==========================================  ===========================

Rejections have a small stream of their own (and the ingest path reports at most a few a
minute per device): a device flooding bad messages must not push other devices' events out.
An existing FLOTTA_EVENTS that still lists ``flotta.bridge.rejected`` is updated first, so the
subject is free for FLOTTA_REJECTED.

All are file-backed with ``discard old``: when full, the oldest messages go. The duplicate
window is how long a ``Nats-Msg-Id`` is remembered: a telemetry batch or an event that the
agent sends again for want of a receipt (after ``telemetry_resend_seconds``, 120 s by default)
arrives within minutes of the first copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotta.bridge.outbound import REJECTED_SUBJECT
from flotta.schemas.topics import DeviceTopic, nats_filter

MiB = 1024 * 1024
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age: float  # seconds
    max_bytes: int
    duplicate_window: float  # seconds
    max_msgs_per_subject: int = -1


@dataclass(frozen=True, slots=True)
class StreamSettings:
    events_max_age: float = 7 * 24 * HOUR
    events_max_bytes: int = 1024 * MiB
    events_duplicate_window: float = 20 * 60.0
    telemetry_max_age: float = 24 * HOUR
    telemetry_max_bytes: int = 2048 * MiB
    telemetry_duplicate_window: float = 20 * 60.0
    status_per_device: int = 5
    status_max_age: float = HOUR
    status_max_bytes: int = 256 * MiB
    duplicate_window: float = 120.0
    rejected_max_age: float = 24 * HOUR
    rejected_max_bytes: int = 64 * MiB


def stream_specs(settings: StreamSettings = StreamSettings()) -> tuple[StreamSpec, ...]:
    return (
        StreamSpec(
            "FLOTTA_EVENTS",
            tuple(nats_filter((DeviceTopic.EVENTS, DeviceTopic.CONNECTION))),
            settings.events_max_age,
            settings.events_max_bytes,
            settings.events_duplicate_window,
        ),
        StreamSpec(
            "FLOTTA_TELEMETRY",
            tuple(nats_filter((DeviceTopic.METRICS, DeviceTopic.LOGS))),
            settings.telemetry_max_age,
            settings.telemetry_max_bytes,
            settings.telemetry_duplicate_window,
        ),
        StreamSpec(
            "FLOTTA_STATUS",
            tuple(nats_filter((DeviceTopic.STATUS,))),
            settings.status_max_age,
            settings.status_max_bytes,
            settings.duplicate_window,
            max_msgs_per_subject=settings.status_per_device,
        ),
        StreamSpec(
            "FLOTTA_REJECTED",
            (REJECTED_SUBJECT,),
            settings.rejected_max_age,
            settings.rejected_max_bytes,
            settings.duplicate_window,
        ),
    )

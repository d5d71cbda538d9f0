"""What the agent's collaborators share: the state they read and write, and the events that
wake their loops. Plain data; who writes which field is told next to it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from flotta.agent.runtime import WorkloadState
from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.scraping import PodEndpoint
from flotta.schemas.wire import DesiredState, VersionFailure


@dataclass
class AgentState:
    desired: DesiredState | None = None  # the inbox (and the deregistration clears it)
    applied_version: str = ""  # the reconciler: the last known good, running
    running: DesiredState | None = None  # the reconciler: what the pods are made to match
    applying_version: str = ""  # the reconciler: being applied, verified or rolled back
    waiting_version: str = ""  # the reconciler: waits for the update window
    window_opens: datetime | None = None  # the reconciler: while a version waits
    failed: VersionFailure | None = None  # the reconciler: the latest failed version
    failures: dict[str, str] = field(default_factory=dict)  # the reconciler
    states: dict[str, WorkloadState] = field(default_factory=dict)  # reconciler, heartbeat
    endpoints: dict[str, PodEndpoint] = field(default_factory=dict)  # the reconciler
    phase: str = "starting"  # starting, enrolling, running, stopped, deregistered
    last_connected: str = ""  # the MQTT session
    last_error: str = ""  # whoever met the latest error
    bad_payloads: int = 0  # the inbox and the MQTT session's consumer
    bad_receipts: int = 0  # the inbox
    telemetry: TelemetryService | None = None  # started by the agent once enrolled


@dataclass
class Wakeups:
    """Set to have a loop act now instead of at the end of its wait."""

    reconcile: asyncio.Event = field(default_factory=asyncio.Event)
    heartbeat: asyncio.Event = field(default_factory=asyncio.Event)
    events: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

"""Heartbeat contents, built from what the agent knows: pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from flotta.agent.hardware import changed_sections
from flotta.agent.runtime import WorkloadState
from flotta.schemas.wire import (
    DesiredState,
    Hardware,
    HardwareReport,
    HeartbeatConfiguration,
    WorkloadReport,
)


def workload_reports(
    desired: DesiredState | None,
    states: Mapping[str, WorkloadState],
    failures: Mapping[str, str],
) -> list[WorkloadReport]:
    """One report per desired workload; a workload that cannot run says why, one that is
    being created is Deploying, one still present but no longer desired is Removing."""
    reports: list[WorkloadReport] = []
    wanted = [workload.name for workload in desired.workloads] if desired is not None else []
    for name in wanted:
        if name in failures:
            reports.append(WorkloadReport(name=name, phase="Failed", message=failures[name][:4096]))
        elif name in states:
            state = states[name]
            reports.append(WorkloadReport(name=name, phase=state.phase, message=state.message))
        else:
            reports.append(WorkloadReport(name=name, phase="Deploying"))
    for name in sorted(set(states) - set(wanted)):
        reports.append(WorkloadReport(name=name, phase="Removing"))
    return reports


class HardwareTracker:
    """Full inventory first (and again until one was delivered), then the changed sections."""

    def __init__(self) -> None:
        self.delivered: Hardware | None = None

    def report(self, current: Hardware, heartbeat: HeartbeatConfiguration) -> HardwareReport | None:
        profile = heartbeat.hardware_profile
        if profile is not None and not profile.include:
            return None
        if self.delivered is None or (profile is not None and profile.scope == "full"):
            return HardwareReport(scope="full", hardware=current)
        delta = changed_sections(self.delivered, current)
        return None if delta is None else HardwareReport(scope="delta", hardware=delta)

    def confirm(self, current: Hardware) -> None:
        """The heartbeat carrying ``current`` (or its delta) was acknowledged by the broker."""
        self.delivered = current


def period_seconds(desired: DesiredState | None, default: int) -> int:
    if desired is None:
        return default
    return desired.configuration.heartbeat.period_seconds


def utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")

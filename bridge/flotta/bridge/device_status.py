"""The part of an EdgeDevice status that the bridge owns, how device reports change it, and
what a user would see change.

The bridge owns ``phase`` (Online/Offline), ``lastSeenTime``, ``appliedVersion``, the
rollout fields (``applyingVersion``, ``waitingVersion``, ``windowOpens``, ``failedVersion``),
``hardware``, ``workloads``, ``upgradeInformation``, its four conditions (Online,
ConfigApplied, WorkloadsReady, and Ready, which sums the other three up) and
``observedGeneration``. The operator owns
``desiredVersion``, ``certificate`` and the initial phase ``Enrolled``; the bridge only reads
them. Everything here is pure: time comes in as an argument.

``lastSeenTime`` and ``workloads[].lastDataUpload`` are not *visible* changes: they move with
every heartbeat and are written only with a visible change or a periodic last-seen refresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flotta.bridge.hardware import merge_hardware
from flotta.schemas.crd.common import kube_time
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.status import StatusReport, UpgradeReport, VersionFailure

ONLINE = "Online"
OFFLINE = "Offline"
UNKNOWN = "Unknown"  # written by the operator while no bridge is alive
CONDITION_TYPES = ("Online", "ConfigApplied", "WorkloadsReady", "Ready")
READY_PHASES = frozenset({"Running"})
DEFAULT_HEARTBEAT_PERIOD = 60.0  # seconds: upstream Flotta's, while no period was told
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What the bridge knows about an EdgeDevice from the API (watch)."""

    namespace: str
    name: str
    generation: int = 0
    desired_version: str = ""
    heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD  # the period the device was told
    uid: str = ""


@dataclass(frozen=True, slots=True)
class WorkloadState:
    name: str
    phase: str
    message: str = ""
    last_transition_time: datetime | None = None
    last_data_upload: datetime | None = None

    def visible(self) -> tuple[str, str, str]:
        return (self.name, self.phase, self.message)


@dataclass(frozen=True, slots=True)
class ConditionState:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: datetime
    observed_generation: int

    def visible(self) -> tuple[str, str, str, str, int]:
        return (self.type, self.status, self.reason, self.message, self.observed_generation)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """The bridge-owned status of one device."""

    phase: str | None = None
    last_seen: datetime | None = None
    applied_version: str = ""
    workloads: tuple[WorkloadState, ...] = ()
    hardware: dict[str, Any] | None = None
    upgrade: dict[str, Any] | None = None
    conditions: tuple[ConditionState, ...] = ()
    observed_generation: int | None = None
    applying_version: str = ""
    waiting_version: str = ""
    window_opens: datetime | None = None
    failed: dict[str, Any] | None = None  # status.failedVersion, as the API carries it
    # Conditions of other types (another controller's): kept when the list is patched.
    foreign_conditions: tuple[dict[str, Any], ...] = field(default=(), compare=False)


# ---- reading the API form -------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def from_api(status: dict[str, Any] | None) -> DeviceStatus:
    """The bridge-owned fields of an EdgeDevice ``status`` as the API returns it."""
    status = status or {}
    workloads = tuple(
        WorkloadState(
            name=str(item.get("name", "")),
            phase=str(item.get("phase", "Unknown")),
            message=str(item.get("message", "")),
            last_transition_time=_time(item.get("lastTransitionTime")),
            last_data_upload=_time(item.get("lastDataUpload")),
        )
        for item in status.get("workloads") or ()
        if isinstance(item, dict)
    )
    ours: list[ConditionState] = []
    foreign: list[dict[str, Any]] = []
    for item in status.get("conditions") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") in CONDITION_TYPES:
            ours.append(
                ConditionState(
                    type=str(item["type"]),
                    status=str(item.get("status", "Unknown")),
                    reason=str(item.get("reason", "")),
                    message=str(item.get("message", "")),
                    last_transition_time=_time(item.get("lastTransitionTime")) or EPOCH,
                    observed_generation=int(item.get("observedGeneration") or 0),
                )
            )
        else:
            foreign.append(item)
    phase = status.get("phase")
    hardware = status.get("hardware")
    upgrade = status.get("upgradeInformation")
    generation = status.get("observedGeneration")
    failed = status.get("failedVersion")
    return DeviceStatus(
        phase=phase if isinstance(phase, str) else None,
        last_seen=_time(status.get("lastSeenTime")),
        applied_version=str(status.get("appliedVersion") or ""),
        workloads=workloads,
        hardware=hardware if isinstance(hardware, dict) else None,
        upgrade=upgrade if isinstance(upgrade, dict) else None,
        conditions=tuple(ours),
        observed_generation=generation if isinstance(generation, int) else None,
        foreign_conditions=tuple(foreign),
        applying_version=str(status.get("applyingVersion") or ""),
        waiting_version=str(status.get("waitingVersion") or ""),
        window_opens=_time(status.get("windowOpens")),
        failed=failed if isinstance(failed, dict) and failed.get("version") else None,
    )


# ---- transitions ----------------------------------------------------------------------------


def _workloads(
    previous: tuple[WorkloadState, ...], report: StatusReport, now: datetime
) -> tuple[WorkloadState, ...]:
    known = {workload.name: workload for workload in previous}
    result = []
    for item in report.workloads:
        before = known.get(item.name)
        if before is not None and before.phase == item.phase:
            since = before.last_transition_time
        else:
            since = min(item.since, now) if item.since is not None else now
        result.append(
            WorkloadState(
                name=item.name,
                phase=item.phase,
                message=item.message[:1024],
                last_transition_time=since,
                last_data_upload=item.last_data_upload,
            )
        )
    result.sort(key=lambda workload: workload.name)
    return tuple(result)


def _upgrade(report: UpgradeReport) -> dict[str, Any]:
    info: dict[str, Any] = {"supported": report.supported}
    if report.current_commit_id:
        info["currentCommitID"] = report.current_commit_id
    if report.last_upgrade_status:
        info["lastUpgradeStatus"] = report.last_upgrade_status
    if report.last_upgrade_time is not None:
        info["lastUpgradeTime"] = kube_time(report.last_upgrade_time)
    return info


def _failed(failure: VersionFailure | None) -> dict[str, Any] | None:
    """``status.failedVersion`` from the report's ``failed`` (bounded as the CRD is)."""
    if failure is None:
        return None
    info: dict[str, Any] = {"version": failure.version, "reason": failure.reason}
    if failure.workload:
        info["workload"] = failure.workload
    if failure.container:
        info["container"] = failure.container
    if failure.exit_code is not None:
        info["exitCode"] = failure.exit_code
    if failure.message:
        info["message"] = failure.message[:1024]
    info["time"] = kube_time(failure.time)
    info["rolledBack"] = failure.rolled_back
    if failure.retry:
        info["retry"] = failure.retry
    return info


def _rollout_unchanged(previous: DeviceStatus, report: StatusReport) -> bool:
    return (
        previous.applying_version == report.applying_version
        and previous.waiting_version == report.waiting_version
        and previous.window_opens == report.window_opens
        and previous.failed == _failed(report.failed)
    )


def on_heartbeat(
    previous: DeviceStatus, report: StatusReport, context: DeviceContext, now: datetime
) -> DeviceStatus:
    """The status after a heartbeat: the device is online and says what it runs."""
    if _unchanged(previous, report):
        # The common case, kept cheap: only the times that are not visible move.
        uploads = tuple(item.last_data_upload for item in report.workloads)
        workloads = previous.workloads
        if any(w.last_data_upload != u for w, u in zip(workloads, uploads, strict=True)):
            workloads = tuple(
                replace(w, last_data_upload=u) for w, u in zip(workloads, uploads, strict=True)
            )
        return replace(previous, last_seen=now, workloads=workloads)
    hardware = previous.hardware
    if report.hardware is not None:
        hardware = merge_hardware(previous.hardware, report.hardware)
    upgrade = previous.upgrade if report.upgrade is None else _upgrade(report.upgrade)
    status = replace(
        previous,
        phase=ONLINE,
        last_seen=now,
        applied_version=report.applied_version,
        workloads=_workloads(previous.workloads, report, now),
        hardware=hardware,
        upgrade=upgrade,
        applying_version=report.applying_version,
        waiting_version=report.waiting_version,
        window_opens=report.window_opens,
        failed=_failed(report.failed),
    )
    return with_conditions(status, context, now, offline_reason="")


def _unchanged(previous: DeviceStatus, report: StatusReport) -> bool:
    """Whether a heartbeat repeats what the status already says (in the same order)."""
    if (
        previous.phase != ONLINE
        or report.hardware is not None
        or previous.applied_version != report.applied_version
        or len(previous.workloads) != len(report.workloads)
        or (report.upgrade is not None and previous.upgrade != _upgrade(report.upgrade))
        or not _rollout_unchanged(previous, report)
    ):
        return False
    return all(
        w.name == item.name and w.phase == item.phase and w.message == item.message[:1024]
        for w, item in zip(previous.workloads, report.workloads, strict=True)
    )


def on_connection(
    previous: DeviceStatus, message: ConnectionState, context: DeviceContext, now: datetime
) -> DeviceStatus:
    """The status after a birth (online) or a will (offline) message."""
    if message.state == "online":
        status = replace(previous, phase=ONLINE, last_seen=now)
        if message.applied_version:
            status = replace(status, applied_version=message.applied_version)
        return with_conditions(status, context, now, offline_reason="")
    return on_disconnected(previous, context, now)


def on_disconnected(previous: DeviceStatus, context: DeviceContext, now: datetime) -> DeviceStatus:
    """The status once the device's connection is gone (its will, and no birth since)."""
    status = replace(previous, phase=OFFLINE)
    return with_conditions(status, context, now, offline_reason="Disconnected")


def on_missed_heartbeats(
    previous: DeviceStatus, context: DeviceContext, now: datetime
) -> DeviceStatus:
    status = replace(previous, phase=OFFLINE)
    return with_conditions(status, context, now, offline_reason="HeartbeatsMissed")


def on_context(previous: DeviceStatus, context: DeviceContext, now: datetime) -> DeviceStatus:
    """Recompute the conditions after the EdgeDevice changed (desired version, generation)."""
    if previous.phase not in (ONLINE, OFFLINE):
        return previous  # the device never reported: nothing of ours to recompute
    online = _condition(previous, "Online")
    offline_reason = ""
    if previous.phase == OFFLINE:
        offline_reason = online.reason if online and online.status == "False" else "Disconnected"
    return with_conditions(previous, context, now, offline_reason=offline_reason)


# ---- conditions -----------------------------------------------------------------------------


def _condition(status: DeviceStatus, kind: str) -> ConditionState | None:
    for condition in status.conditions:
        if condition.type == kind:
            return condition
    return None


Wanted = tuple[str, str, str, str]  # type, status, reason, message


def _wanted(status: DeviceStatus, context: DeviceContext, offline_reason: str) -> list[Wanted]:
    if status.phase == ONLINE:
        online = ("Online", "True", "DeviceOnline", "the device reports")
    elif offline_reason == "HeartbeatsMissed":
        online = ("Online", "False", offline_reason, "no heartbeat for 3 heartbeat periods")
    else:
        online = ("Online", "False", offline_reason or "Disconnected", "the device disconnected")
    desired = context.desired_version
    failed = status.failed or {}
    if not desired:
        config = ("ConfigApplied", "Unknown", "NoDesiredVersion", "no desired version yet")
    elif status.applied_version == desired:
        config = ("ConfigApplied", "True", "VersionApplied", f"version {desired} applied")
    elif failed.get("version") == desired and not _retrying(status, failed):
        config = ("ConfigApplied", "False", "VersionFailed", _failure_message(status, failed))
    elif status.waiting_version == desired:
        opens = f" (opens {kube_time(status.window_opens)})" if status.window_opens else ""
        message = f"version {desired} waits for the update window{opens}"
        config = ("ConfigApplied", "False", "WaitingForWindow", message)
    elif status.applying_version == desired:
        message = f"applying version {desired} (health gate)"
        config = ("ConfigApplied", "False", "Applying", message)
    else:
        applied = status.applied_version or "none"
        message = f"applied {applied}, desired {desired}"
        config = ("ConfigApplied", "False", "VersionPending", message)
    not_ready = [w for w in status.workloads if w.phase not in READY_PHASES]
    if status.phase != ONLINE:
        ready = ("WorkloadsReady", "Unknown", "DeviceOffline", "the device does not report")
    elif not status.workloads:
        ready = ("WorkloadsReady", "True", "NoWorkloads", "no workloads")
    elif not not_ready:
        ready = ("WorkloadsReady", "True", "AllRunning", f"{len(status.workloads)} running")
    else:
        listed = ", ".join(f"{w.name}: {w.phase}" for w in not_ready[:10])
        ready = ("WorkloadsReady", "False", "WorkloadsNotReady", listed)
    return [online, config, ready, overall(online, config, ready)]


def _retrying(status: DeviceStatus, failed: dict[str, Any]) -> bool:
    """The device applies again a version it failed and rolled back from (a retry)."""
    return bool(failed.get("rolledBack")) and status.applying_version == failed.get("version")


def _failure_message(status: DeviceStatus, failed: dict[str, Any]) -> str:
    where = "/".join(str(failed[k]) for k in ("workload", "container") if failed.get(k))
    exit_code = f", exit code {failed['exitCode']}" if failed.get("exitCode") is not None else ""
    back = (
        f"; rolled back to {status.applied_version or 'nothing'}"
        if failed.get("rolledBack")
        else "; rolling back"
    )
    detail = f": {failed['message']}" if failed.get("message") else ""
    where = f" in {where}" if where else ""
    cause = f"{failed.get('reason')}{where}{exit_code}"
    return f"version {failed.get('version')} failed ({cause}){back}{detail}"


def overall(online: Wanted, config: Wanted, workloads: Wanted) -> Wanted:
    """The ``Ready`` condition, from the other three: True when the device is online, runs the
    desired version and all its workloads are ready; Unknown while it does not report (the
    Online condition's reason: nobody knows what it runs now); otherwise False, with the reason
    and message of the first condition that is not True (ConfigApplied, then WorkloadsReady).
    It changes only when one of them does, so it never costs a status write of its own."""
    if online[1] != "True":
        return ("Ready", "Unknown", online[2], "the device does not report")
    for kind, value, reason, message in (config, workloads):
        if value != "True":
            return ("Ready", "False", reason, f"{kind}: {message}")
    return ("Ready", "True", "DeviceReady", "desired version applied, workloads ready")


def with_conditions(
    status: DeviceStatus, context: DeviceContext, now: datetime, *, offline_reason: str
) -> DeviceStatus:
    conditions = []
    for kind, value, reason, message in _wanted(status, context, offline_reason):
        before = _condition(status, kind)
        since = before.last_transition_time if before and before.status == value else now
        conditions.append(
            ConditionState(kind, value, reason, message[:1024], since, context.generation)
        )
    return replace(status, conditions=tuple(conditions), observed_generation=context.generation)


# ---- what changed, and the patch that writes it ---------------------------------------------


def visible_changes(written: DeviceStatus, current: DeviceStatus) -> tuple[str, ...]:
    """Names of the status fields whose change a user would see (last-seen times excluded)."""
    changed = []
    if written.phase != current.phase:
        changed.append("phase")
    if written.applied_version != current.applied_version:
        changed.append("appliedVersion")
    if written.applying_version != current.applying_version:
        changed.append("applyingVersion")
    if written.waiting_version != current.waiting_version:
        changed.append("waitingVersion")
    if written.window_opens != current.window_opens:
        changed.append("windowOpens")
    if written.failed != current.failed:
        changed.append("failedVersion")
    if [w.visible() for w in written.workloads] != [w.visible() for w in current.workloads]:
        changed.append("workloads")
    if written.hardware != current.hardware:
        changed.append("hardware")
    if written.upgrade != current.upgrade:
        changed.append("upgradeInformation")
    if [c.visible() for c in written.conditions] != [c.visible() for c in current.conditions]:
        changed.append("conditions")
    if written.observed_generation != current.observed_generation:
        changed.append("observedGeneration")
    return tuple(changed)


def urgent_change(written: DeviceStatus, current: DeviceStatus) -> bool:
    """Whether the change is one a user must see at once: the device went online or offline, or
    a workload appeared, disappeared or changed phase, or a version failed (a rollout halts on
    it). An applied version and the conditions that follow from it can wait behind a rollout's
    backlog; these cannot."""
    return (
        written.phase != current.phase
        or [(w.name, w.phase) for w in written.workloads]
        != [(w.name, w.phase) for w in current.workloads]
        or (current.failed is not None and written.failed != current.failed)
    )


def _workload_api(workload: WorkloadState) -> dict[str, Any]:
    item: dict[str, Any] = {"name": workload.name, "phase": workload.phase}
    if workload.message:
        item["message"] = workload.message
    if workload.last_transition_time is not None:
        item["lastTransitionTime"] = kube_time(workload.last_transition_time)
    if workload.last_data_upload is not None:
        item["lastDataUpload"] = kube_time(workload.last_data_upload)
    return item


def _condition_api(condition: ConditionState) -> dict[str, Any]:
    return {
        "type": condition.type,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
        "lastTransitionTime": kube_time(condition.last_transition_time),
        "observedGeneration": condition.observed_generation,
    }


def status_patch(current: DeviceStatus) -> dict[str, Any]:
    """A JSON merge patch for ``/status`` with every bridge-owned field and nothing else.

    Lists are replaced whole by a merge patch, so the conditions of other controllers that
    the bridge saw are written back unchanged.
    """
    status: dict[str, Any] = {
        "appliedVersion": current.applied_version,
        # Absent fields are written as null: a merge patch removes them.
        "applyingVersion": current.applying_version or None,
        "waitingVersion": current.waiting_version or None,
        "windowOpens": kube_time(current.window_opens) if current.window_opens else None,
        "failedVersion": current.failed,
        "workloads": [_workload_api(w) for w in current.workloads],
        "conditions": [
            *current.foreign_conditions,
            *(_condition_api(c) for c in current.conditions),
        ],
    }
    if current.phase is not None:
        status["phase"] = current.phase
    if current.last_seen is not None:
        status["lastSeenTime"] = kube_time(current.last_seen)
    if current.hardware is not None:
        status["hardware"] = current.hardware
    if current.upgrade is not None:
        status["upgradeInformation"] = current.upgrade
    if current.observed_generation is not None:
        status["observedGeneration"] = current.observed_generation
    return {"status": status}

"""The live fleet view that ``flotta dev up`` shows: pure rendering of EdgeDevices, workloads
and enrolments into text, refreshed by the caller."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

MAX_ROWS = 20


def _age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _workloads(status: Mapping[str, Any]) -> str:
    phases = Counter(w.get("phase", "?") for w in status.get("workloads") or [])
    return ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items())) or "-"


def render(
    devices: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    workloads: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    phases = Counter((d.get("status") or {}).get("phase") or "Pending" for d in devices)
    pending = [
        r for r in requests if (r.get("status") or {}).get("phase") in (None, "Pending", "Approved")
    ]
    lines = [
        f"Flotta fleet at {now:%H:%M:%S}: {len(devices)} devices ("
        + ", ".join(f"{n} {p}" for p, n in sorted(phases.items()))
        + f"); enrolments in progress: {len(pending)}",
        "",
        f"{'NAMESPACE':<12} {'DEVICE':<28} {'PHASE':<9} {'APPLIED':<14} "
        f"{'WORKLOADS':<24} LAST SEEN",
    ]
    ordered = sorted(
        devices, key=lambda d: (d["metadata"].get("namespace", ""), d["metadata"]["name"])
    )
    for device in ordered[:MAX_ROWS]:
        status = device.get("status") or {}
        applied = (status.get("appliedVersion") or "-").removeprefix("sha256:")[:12]
        lines.append(
            f"{device['metadata'].get('namespace', ''):<12} {device['metadata']['name']:<28} "
            f"{status.get('phase') or 'Pending':<9} {applied:<14} {_workloads(status):<24} "
            f"{_age(status.get('lastSeenTime'), now)}"
        )
    if len(ordered) > MAX_ROWS:
        lines.append(f"... and {len(ordered) - MAX_ROWS} more devices")
    if workloads:
        lines += [
            "",
            f"{'WORKLOAD':<28} {'TARGETED':>8} {'APPLIED':>8} {'RUNNING':>8} {'FAILED':>7}",
        ]
        for workload in workloads[:MAX_ROWS]:
            status = workload.get("status") or {}
            lines.append(
                f"{workload['metadata']['name']:<28} {status.get('targetedDevices', 0):>8} "
                f"{status.get('appliedDevices', 0):>8} {status.get('runningDevices', 0):>8} "
                f"{status.get('failedDevices', 0):>7}"
            )
    return "\n".join(lines)

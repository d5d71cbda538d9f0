"""Where the telemetry service scrapes a workload and the health gate probes it: its pod's
address (the infra container's IP on the Podman network; empty on the host network) and the
network namespace of the infra container's process, from which the agent connects (see
:mod:`flotta.agent.telemetry.netns`). Read for workloads that ask for metrics on every
reconcile, and by the gate when it probes: a restarted pod gets a new process, and so a new
endpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from flotta.agent.runtime import PodmanRuntime, WorkloadRuntimeError
from flotta.agent.telemetry.netns import netns_of
from flotta.agent.telemetry.scraping import PodEndpoint
from flotta.schemas.wire import DesiredWorkload

log = logging.getLogger(__name__)


def pod_address(inspect: Any) -> str:
    """The first IP address in a container inspection's network settings ("" if none)."""
    if not isinstance(inspect, dict):
        return ""
    settings = inspect.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    for network in sorted(networks):
        address = (networks[network] or {}).get("IPAddress")
        if isinstance(address, str) and address:
            return address
    address = settings.get("IPAddress")
    return address if isinstance(address, str) else ""


def pod_endpoint(inspect: Any) -> PodEndpoint | None:
    """The endpoint of a running infra container's inspection; None when it is not running."""
    state = inspect.get("State") if isinstance(inspect, dict) else None
    pid = state.get("Pid") if isinstance(state, dict) else None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    return PodEndpoint(pod_address(inspect), netns_of(pid))


async def workload_endpoints(
    runtime: PodmanRuntime, workloads: Sequence[DesiredWorkload]
) -> dict[str, PodEndpoint]:
    endpoints: dict[str, PodEndpoint] = {}
    for workload in workloads:
        if workload.metrics is None:
            continue
        try:
            endpoint = await workload_endpoint(runtime, workload.name)
        except WorkloadRuntimeError as exc:
            log.info("no metrics endpoint for %s yet: %s", workload.name, exc)
            continue
        if endpoint is not None:
            endpoints[workload.name] = endpoint
    return endpoints


async def workload_endpoint(runtime: PodmanRuntime, name: str) -> PodEndpoint | None:
    """The endpoint of the workload's pod; None while its infra container does not run."""
    pod = await runtime.client.call(f"inspecting pod {name}", "GET", f"/pods/{quote(name)}/json")
    infra = pod.get("InfraContainerID") if isinstance(pod, dict) else None
    if not infra:
        return None
    inspect = await runtime.client.call(
        f"inspecting infra container of {name}", "GET", f"/containers/{quote(str(infra))}/json"
    )
    return pod_endpoint(inspect)

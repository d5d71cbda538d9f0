"""Where the telemetry service scrapes a workload: the address of its pod (the infra
container's IP on the Podman network), read for workloads that ask for metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from flotta.agent.runtime import PodmanRuntime, WorkloadRuntimeError
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


async def workload_endpoints(
    runtime: PodmanRuntime, workloads: Sequence[DesiredWorkload]
) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    for workload in workloads:
        if workload.metrics is None:
            continue
        try:
            pod = await runtime.client.call(
                f"inspecting pod {workload.name}", "GET", f"/pods/{quote(workload.name)}/json"
            )
            infra = pod.get("InfraContainerID") if isinstance(pod, dict) else None
            if not infra:
                continue
            inspect = await runtime.client.call(
                f"inspecting infra container of {workload.name}",
                "GET",
                f"/containers/{quote(str(infra))}/json",
            )
        except WorkloadRuntimeError as exc:
            log.info("no metrics endpoint for %s yet: %s", workload.name, exc)
            continue
        address = pod_address(inspect)
        if address:
            endpoints[workload.name] = address
    return endpoints

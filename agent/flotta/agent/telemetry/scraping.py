"""Scraping workload metrics: which endpoints (pure), an HTTP GET with the standard library,
and relabelling every sample with its source.

Reaching the pod: the agent connects from inside the pod's network namespace
(:mod:`flotta.agent.telemetry.netns`), to the pod's address there (its loopback for a pod on
the host network). That works whatever network mode Podman uses: rootful or rootless,
bridge, slirp4netns, pasta or host, and a Podman service in a network namespace of its own
as in the local stack, where the pod addresses (10.89.x.x) are not routed to the agent at
all. It publishes no host port, so nothing else on the device or the network reaches the
metrics port. An endpoint without a namespace (a plain address) is reached from the agent's
own namespace.

Which ports (upstream Flotta's rules): every container of the pod is scraped at the
workload's ``port`` and ``path``, unless ``metrics.containers`` has an entry for it: then at
that entry's ``port`` and ``path`` (each falling back to the workload's), or not at all when
the entry says ``disabled``. Containers share their pod's network, so containers that come
out at the same port and path are one endpoint, scraped once: its samples are labelled with
the container when only one container maps to it, and with the workload alone otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotta.agent.telemetry import plain_http
from flotta.agent.telemetry.errors import ExpositionError, ScrapeError
from flotta.agent.telemetry.exposition import parse_exposition
from flotta.agent.telemetry.samples import Measurement
from flotta.schemas.wire import DesiredWorkload
from flotta.schemas.wire.desired import WorkloadMetricsSettings

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
SOURCE_LABELS = ("device", "workload", "container")
POD_LOOPBACK = "127.0.0.1"
ACCEPT = (("Accept", "text/plain;version=0.0.4"),)


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    """Where a workload's pod is reached: its address, and the network namespace file to
    reach it from (empty: the agent's own namespace)."""

    address: str
    netns: str = ""


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    workload: str
    container: str
    host: str
    port: int
    path: str
    interval: float
    allow_list: tuple[str, ...] | None
    netns: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


def scrape_targets(
    workloads: Sequence[DesiredWorkload], endpoints: Mapping[str, PodEndpoint | str]
) -> list[ScrapeTarget]:
    """The endpoints to scrape (see the module's docstring); workloads without metrics
    settings or without a known endpoint (a plain string is an address in the agent's own
    namespace) have none."""
    targets: list[ScrapeTarget] = []
    for workload in workloads:
        settings = workload.metrics
        endpoint = endpoints.get(workload.name)
        if isinstance(endpoint, str):
            endpoint = PodEndpoint(endpoint) if endpoint else None
        if settings is None or endpoint is None:
            continue
        host = endpoint.address or (POD_LOOPBACK if endpoint.netns else "")
        if not host:
            continue
        allow = tuple(settings.allow_list) if settings.allow_list is not None else None
        interval = float(max(1, settings.interval))
        containers_at: dict[tuple[int, str], list[str]] = {}
        for container, port, path in container_endpoints(workload.pod_spec, settings):
            containers_at.setdefault((port, path), []).append(container)
        for (port, path), containers in sorted(containers_at.items()):
            targets.append(
                ScrapeTarget(
                    workload.name,
                    containers[0] if len(containers) == 1 else "",
                    host,
                    port,
                    path,
                    interval,
                    allow,
                    endpoint.netns,
                )
            )
    return targets


def container_endpoints(
    pod_spec: Mapping[str, Any], settings: WorkloadMetricsSettings
) -> list[tuple[str, int, str]]:
    """(container, port, path) for each container that is scraped, in the pod's order; a
    pod spec that names no container counts as one unnamed container."""
    names = [
        str(container["name"])
        for container in pod_spec.get("containers") or ()
        if isinstance(container, Mapping) and isinstance(container.get("name"), str)
    ] or [""]
    found: list[tuple[str, int, str]] = []
    for name in names:
        port, path = settings.port, settings.path
        overrides = settings.containers.get(name) if name else None
        if overrides is not None:
            if overrides.get("disabled") is True:
                continue
            own_port = overrides.get("port")
            if isinstance(own_port, int) and not isinstance(own_port, bool) and own_port > 0:
                port = own_port
            own_path = overrides.get("path")
            if isinstance(own_path, str) and own_path:
                path = own_path
        if 0 < port <= 65535:
            found.append((name, port, _path(path)))
    return found


def _path(path: str) -> str:
    return path if path.startswith("/") else f"/{path}"


def relabel(measurements: Sequence[Measurement], *, target: ScrapeTarget) -> list[Measurement]:
    """Every sample gets ``workload`` and ``container`` (when known); a label that the
    workload exposed itself named ``device``, ``workload`` or ``container`` is kept as
    ``exported_<name>``. The device is not a label: the batch's topic names it, and the
    exporter adds ``namespace`` and ``device`` from there, as it does for system metrics."""
    source = {"workload": target.workload}
    if target.container:
        source["container"] = target.container
    result: list[Measurement] = []
    for measurement in measurements:
        labels = {
            (f"exported_{name}" if name in SOURCE_LABELS else name): value
            for name, value in measurement.labels.items()
        }
        labels.update(source)
        result.append(
            Measurement(measurement.name, measurement.value, labels, measurement.timestamp_ms)
        )
    return result


async def scrape(target: ScrapeTarget, *, time_limit: float) -> list[Measurement]:
    body = await http_get(
        target.host, target.port, target.path, time_limit=time_limit, netns=target.netns
    )
    try:
        text = body.decode("utf-8")
        exposition = parse_exposition(text)
    except UnicodeDecodeError as exc:
        raise ScrapeError(target.url, f"not UTF-8: {exc}") from None
    except ExpositionError as exc:
        raise ScrapeError(target.url, str(exc)) from None
    measurements = [
        Measurement(sample.name, sample.value, sample.labels, sample.timestamp_ms)
        for sample in exposition.samples
    ]
    return relabel(measurements, target=target)


async def http_get(
    host: str,
    port: int,
    path: str,
    *,
    time_limit: float,
    max_bytes: int = MAX_RESPONSE_BYTES,
    netns: str = "",
) -> bytes:
    """The body of a 200 answer to a plain HTTP GET (:mod:`flotta.agent.telemetry.plain_http`).
    ``netns``: connect from inside that network namespace (see the module's docstring)."""
    url = f"http://{host}:{port}{path}"
    try:
        answer = await plain_http.get(
            host,
            port,
            path,
            headers=ACCEPT,
            time_limit=time_limit,
            max_bytes=max_bytes,
            netns=netns,
        )
    except TimeoutError:
        raise ScrapeError(url, f"no complete answer within {time_limit:g} s") from None
    except (OSError, ValueError) as exc:
        raise ScrapeError(url, str(exc) or type(exc).__name__) from None
    if answer.status != 200:
        raise ScrapeError(url, f"HTTP status {answer.status} {answer.reason}".rstrip())
    if not answer.complete:
        raise ScrapeError(url, f"answer is over {max_bytes} bytes")
    return answer.body

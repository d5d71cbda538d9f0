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

import asyncio
import contextlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotta.agent.telemetry.errors import ExpositionError, ScrapeError
from flotta.agent.telemetry.exposition import parse_exposition
from flotta.agent.telemetry.netns import socket_in
from flotta.agent.telemetry.samples import Measurement
from flotta.schemas.wire import DesiredWorkload
from flotta.schemas.wire.desired import WorkloadMetricsSettings

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
SOURCE_LABELS = ("device", "workload", "container")
POD_LOOPBACK = "127.0.0.1"


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
    """A plain HTTP/1.0 GET (no chunked encoding to handle); the body of a 200 answer.
    ``netns``: connect from inside that network namespace (see the module's docstring)."""
    url = f"http://{host}:{port}{path}"
    try:
        async with asyncio.timeout(time_limit):
            reader, writer = await _open(host, port, netns)
            try:
                writer.write(
                    f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
                    "Accept: text/plain;version=0.0.4\r\nAccept-Encoding: identity\r\n\r\n".encode(
                        "ascii"
                    )
                )
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                body = await _read_to_end(reader, max_bytes + 1)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        raise ScrapeError(url, f"no complete answer within {time_limit:g} s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, UnicodeError) as exc:
        raise ScrapeError(url, str(exc) or type(exc).__name__) from None
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ScrapeError(url, f"not an HTTP answer: {status_line[:80]!r}")
    if parts[1] != "200":
        raise ScrapeError(url, f"HTTP status {status_line[len(parts[0]) + 1 :]}")
    if len(body) > max_bytes:
        raise ScrapeError(url, f"answer is over {max_bytes} bytes")
    return body


async def _read_to_end(reader: asyncio.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await reader.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _open(
    host: str, port: int, netns: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    limit = 64 * 1024
    if not netns:
        return await asyncio.open_connection(host, port, limit=limit)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = await asyncio.to_thread(socket_in, netns, family)
    except PermissionError as exc:
        try:
            return await asyncio.open_connection(host, port, limit=limit)
        except OSError as direct:
            raise OSError(
                f"{direct}; the pod's network namespace {netns} could not be entered "
                f"({exc.strerror}: the agent needs CAP_SYS_ADMIN)"
            ) from None
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=limit)

"""Scraping workload metrics: which endpoints (pure), an HTTP GET with the standard library,
and relabelling every sample with its source."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flotta.agent.telemetry.errors import ExpositionError, ScrapeError
from flotta.agent.telemetry.exposition import parse_exposition
from flotta.agent.telemetry.samples import Measurement
from flotta.schemas.wire import DesiredWorkload

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
SOURCE_LABELS = ("device", "workload", "container")


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    workload: str
    container: str
    host: str
    port: int
    path: str
    interval: float
    allow_list: tuple[str, ...] | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


def scrape_targets(
    workloads: Sequence[DesiredWorkload], endpoints: Mapping[str, str]
) -> list[ScrapeTarget]:
    """One target for the workload's port (if set) and one per container entry with its own
    port; workloads without metrics settings or without a known endpoint have none."""
    targets: list[ScrapeTarget] = []
    for workload in workloads:
        settings = workload.metrics
        host = endpoints.get(workload.name)
        if settings is None or not host:
            continue
        allow = tuple(settings.allow_list) if settings.allow_list is not None else None
        interval = float(max(1, settings.interval))
        if settings.port > 0:
            targets.append(
                ScrapeTarget(
                    workload.name, "", host, settings.port, _path(settings.path), interval, allow
                )
            )
        for container, overrides in sorted(settings.containers.items()):
            port = overrides.get("port", 0)
            if overrides.get("disabled") is True or not isinstance(port, int) or port <= 0:
                continue
            path = overrides.get("path", settings.path)
            targets.append(
                ScrapeTarget(
                    workload.name,
                    container,
                    host,
                    port,
                    _path(path if isinstance(path, str) else settings.path),
                    interval,
                    allow,
                )
            )
    return targets


def _path(path: str) -> str:
    return path if path.startswith("/") else f"/{path}"


def relabel(
    measurements: Sequence[Measurement], *, device_id: str, target: ScrapeTarget
) -> list[Measurement]:
    """Every sample gets ``device``, ``workload`` and ``container`` (when known); a label of
    the same name that the workload exposed itself is kept as ``exported_<name>``."""
    source = {"device": device_id, "workload": target.workload}
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


async def scrape(target: ScrapeTarget, *, device_id: str, time_limit: float) -> list[Measurement]:
    body = await http_get(target.host, target.port, target.path, time_limit=time_limit)
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
    return relabel(measurements, device_id=device_id, target=target)


async def http_get(
    host: str, port: int, path: str, *, time_limit: float, max_bytes: int = MAX_RESPONSE_BYTES
) -> bytes:
    """A plain HTTP/1.0 GET (no chunked encoding to handle); the body of a 200 answer."""
    url = f"http://{host}:{port}{path}"
    try:
        async with asyncio.timeout(time_limit):
            reader, writer = await asyncio.open_connection(host, port, limit=64 * 1024)
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

"""Running a container's probes for the health gate: ``exec`` through libpod's exec API (the
command as given, no shell), ``httpGet`` and ``tcpSocket`` by the agent itself from inside the
pod's network namespace (:mod:`flotta.agent.telemetry.netns`), to the pod's address there (or
the probe's ``host``). Each run is bounded by the probe's ``timeoutSeconds``; running out of
time is a failure, as in Kubernetes.

An HTTP probe succeeds on a status from 200 to 399 (a redirect is not followed) and sends
``User-Agent: flotta-probe/1``, ``Accept: */*`` and the probe's ``httpHeaders``; the answer
kept for the report is the status line and the start of the body. A probe the agent could not
run (Podman unreachable, the pod's network namespace unknown) has no result: it is not held
against the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence

from flotta.agent.endpoints import workload_endpoint
from flotta.agent.health_gate import GateWatch
from flotta.agent.probe_schedule import MAX_ANSWER, ProbeResult
from flotta.agent.runtime import ContainerHealth, PodmanRuntime, WorkloadRuntimeError
from flotta.agent.telemetry import plain_http
from flotta.agent.telemetry.netns import open_connection
from flotta.agent.telemetry.scraping import POD_LOOPBACK, PodEndpoint
from flotta.schemas.probes import Exec, HttpGet, Probe

log = logging.getLogger(__name__)


async def probe_due(
    watch: GateWatch,
    workload: str,
    containers: Sequence[ContainerHealth],
    now: float,
    *,
    runtime: PodmanRuntime,
) -> None:
    """Run the probes of ``workload`` that ``watch`` finds due, side by side, and record
    their results."""
    due = watch.probes_due(workload, containers, now)
    if not due:
        return
    endpoint = None
    if any(not isinstance(probe.action, Exec) for _, probe in due):
        try:
            endpoint = await workload_endpoint(runtime, workload)
        except WorkloadRuntimeError as exc:
            log.info("probes of %s: no endpoint: %s", workload, exc)
    async with asyncio.TaskGroup() as group:
        runs = [
            group.create_task(
                run_probe(
                    probe, runtime=runtime, container_id=container.container_id, endpoint=endpoint
                )
            )
            for container, probe in due
        ]
    for (container, probe), run in zip(due, runs, strict=True):
        watch.probed(container.container_id, probe, run.result(), now)


HTTP_HEADERS = (("User-Agent", "flotta-probe/1"), ("Accept", "*/*"))
MAX_BODY = 10 * 1024  # read of an HTTP answer's body, as the kubelet does


async def run_probe(
    probe: Probe, *, runtime: PodmanRuntime, container_id: str, endpoint: PodEndpoint | None
) -> ProbeResult | None:
    action = probe.action
    try:
        if isinstance(action, Exec):
            return await _exec(probe, action, runtime, container_id)
    except WorkloadRuntimeError as exc:
        log.info("%s of %s not run: %s", probe, container_id[:12], exc)
        return None
    if endpoint is None:
        return None
    host = action.host or endpoint.address or POD_LOOPBACK
    try:
        if isinstance(action, HttpGet):
            return await _http_get(probe, action, host, endpoint.netns)
        async with asyncio.timeout(probe.timeout):
            _, writer = await open_connection(host, action.port, endpoint.netns)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return ProbeResult(True)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {probe.timeout} s")
    except OSError as exc:
        said = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        return ProbeResult(False, f"{host}:{action.port}: {said}")
    except ValueError as exc:
        return ProbeResult(False, str(exc))


async def _exec(
    probe: Probe, action: Exec, runtime: PodmanRuntime, container_id: str
) -> ProbeResult:
    ran = await runtime.exec(
        container_id, action.command, time_limit=probe.timeout, max_output=MAX_ANSWER
    )
    output = ran.output.strip()
    if ran.exit_code is None:
        return ProbeResult(False, f"did not end within {probe.timeout} s" + _then(output))
    if ran.exit_code == 0:
        return ProbeResult(True, output)
    return ProbeResult(False, f"exit code {ran.exit_code}" + _then(output))


async def _http_get(probe: Probe, action: HttpGet, host: str, netns: str) -> ProbeResult:
    answer = await plain_http.get(
        host,
        action.port,
        action.path,
        headers=HTTP_HEADERS + action.headers,
        time_limit=probe.timeout,
        max_bytes=MAX_BODY,
        netns=netns,
    )
    body = answer.body.decode("utf-8", errors="replace").strip()
    said = f"HTTP {answer.status} {answer.reason}".rstrip() + _then(body)
    return ProbeResult(200 <= answer.status < 400, said)


def _then(text: str) -> str:
    return f": {text}" if text else ""

"""``PodmanRuntime``: run workloads as Podman pods through the libpod API socket.

Restart behaviour (Podman 4.3): ``kube play`` turns the pod's ``restartPolicy`` into each
container's restart policy (Always -> always, OnFailure -> on-failure, Never -> no; Always
when unset). Podman restarts an exited container itself, at once and without back-off, as
long as the pod exists; nothing restarts pods after a reboot without systemd units, so the
planner lists stopped ``Always`` pods under ``start``. ``terminationGracePeriodSeconds`` is
ignored by ``kube play``; :meth:`PodmanRuntime.remove` stops pods with it (label
``flotta.io/stop-timeout``) before removing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flotta.agent.runtime.errors import (
    ImageUnavailableError,
    InvalidManifestError,
    PodmanApiError,
    PodmanUnreachableError,
    WorkloadNotFoundError,
    WorkloadRuntimeError,
)
from flotta.agent.runtime.libpod import LibpodClient, api_error, quote
from flotta.agent.runtime.log_frames import FrameDecoder, LogFrameError, LogLine
from flotta.agent.runtime.log_stream import ContainerRef, follow_logs
from flotta.agent.runtime.manifest import RenderedWorkload, render, secret_prefix
from flotta.agent.runtime.phases import workload_state
from flotta.agent.runtime.planning import Plan, plan
from flotta.agent.runtime.pods import app_containers, short_name
from flotta.agent.runtime.registry_auth import registry_config_header
from flotta.agent.runtime.spec import (
    RESTART_POLICY_LABEL,
    SPEC_HASH_LABEL,
    STOP_TIMEOUT_LABEL,
    WORKLOAD_LABEL,
    ContainerHealth,
    ContainerState,
    ExecResult,
    RestartPolicy,
    RunningWorkload,
    WorkloadSpec,
    WorkloadState,
)

log = logging.getLogger(__name__)

IMAGE_ERROR_HINTS = (
    "initializing source",
    "pulling image",
    "unable to pull",
    "image not known",
    "manifest unknown",
    "no such image",
    "reading manifest",
)
MANIFEST_ERROR_HINTS = ("unable to read yaml", "unmarshal", "invalid pod", "validating")
JSON = {"Content-Type": "application/json"}
PODMAN_RESTART_POLICIES: dict[str, RestartPolicy] = {"always": "Always", "on-failure": "OnFailure"}


@dataclass(frozen=True)
class ReconcileResult:
    plan: Plan
    errors: dict[str, WorkloadRuntimeError] = field(default_factory=dict)


class PodmanRuntime:
    """Workloads as pods, one per workload, through the Podman API at ``socket_path``.

    ``files_root`` holds, per workload, the files of its secret and configMap volumes; keep
    it on a private (ideally tmpfs) directory, and export dirs outside it. Changes to one
    workload must not run concurrently (the agent reconciles from one task).
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        files_root: Path,
        request_timeout: float = 60.0,
        play_timeout: float = 900.0,
        log_queue_size: int = 1024,
    ) -> None:
        self.client = LibpodClient(socket_path, timeout=request_timeout)
        self.files_root = files_root
        self.play_timeout = play_timeout
        self.log_queue_size = log_queue_size

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PodmanRuntime:
        """From ``unix:///run/podman/podman.sock`` (the form ``CONTAINER_HOST`` uses)."""
        prefix = "unix://"
        if not url.startswith(prefix):
            raise ValueError(f"only unix:// Podman URLs are supported, not {url!r}")
        return cls(Path(url[len(prefix) :]), **options)

    async def version(self) -> str:
        answer = await self.client.call("version", "GET", "/version")
        return str(answer.get("Version", "")) if isinstance(answer, dict) else ""

    # reading -----------------------------------------------------------------------------

    async def list_workloads(self) -> dict[str, RunningWorkload]:
        """Pods this agent created, by workload name."""
        pods = await self._pods()
        found: dict[str, RunningWorkload] = {}
        for pod in pods:
            labels = pod.get("Labels") or {}
            name = labels.get(WORKLOAD_LABEL)
            if not name:
                continue
            found[name] = RunningWorkload(
                name=name,
                pod_id=str(pod.get("Id", "")),
                spec_hash=labels.get(SPEC_HASH_LABEL, ""),
                status=str(pod.get("Status", "")),
                restart_policy=labels.get(RESTART_POLICY_LABEL, "Always"),
                stop_timeout=_int(labels.get(STOP_TIMEOUT_LABEL), 10),
            )
        return found

    async def phases(self) -> dict[str, WorkloadState]:
        """Every workload's phase, from its pod's application containers."""
        now = datetime.now(UTC)
        states: dict[str, WorkloadState] = {}
        for pod in await self._pods():
            name = (pod.get("Labels") or {}).get(WORKLOAD_LABEL)
            if not name:
                continue
            containers = []
            for summary in app_containers(pod):
                with contextlib.suppress(WorkloadNotFoundError):  # removed meanwhile
                    containers.append(await self._container_state(pod, summary["Id"], now))
            states[name] = workload_state(name, containers)
        return states

    async def health(self, name: str) -> list[ContainerHealth]:
        """The workload's application containers as the health gate reads them;
        WorkloadNotFoundError when it has no pod."""
        pod = await self._pod(name)
        now = datetime.now(UTC)
        found = []
        for summary in app_containers(pod):
            with contextlib.suppress(WorkloadNotFoundError):
                inspect = await self.client.call(
                    "inspecting container", "GET", f"/containers/{quote(summary['Id'])}/json"
                )
                found.append(_container_health(pod, inspect, now))
        return found

    async def exec(
        self, container_id: str, command: Sequence[str], *, time_limit: float, max_output: int
    ) -> ExecResult:
        """Run ``command`` in the container (no shell, no TTY) and wait up to ``time_limit``
        seconds for it to end; the first ``max_output`` bytes of its output are kept. libpod
        cannot stop an exec session: a command that does not end in time runs on."""
        where = f"an exec session in container {container_id[:12]}"
        created = await self.client.call(
            f"creating {where}",
            "POST",
            f"/containers/{quote(container_id)}/exec",
            body=json.dumps(
                {"Cmd": list(command), "AttachStdout": True, "AttachStderr": True}
            ).encode(),
            headers=JSON,
        )
        session = quote(str((created or {}).get("Id", "")))
        output = bytearray()
        try:
            async with asyncio.timeout(time_limit):
                await self._exec_output(session, where, output, max_output)
        except TimeoutError:
            return ExecResult(None, output.decode(errors="replace"))
        inspected = await self.client.call(f"inspecting {where}", "GET", f"/exec/{session}/json")
        exit_code = (inspected or {}).get("ExitCode")
        return ExecResult(
            exit_code if isinstance(exit_code, int) else None, output.decode(errors="replace")
        )

    async def _exec_output(
        self, session: str, where: str, output: bytearray, max_output: int
    ) -> None:
        start = json.dumps({"Detach": False, "Tty": False}).encode()
        async with self.client.stream(
            "POST", f"/exec/{session}/start", body=start, headers=JSON
        ) as (status, _, chunks):
            if status != 200:
                async for chunk in chunks:
                    output += chunk
                    if len(output) > max_output:
                        break
                message = output.decode(errors="replace")[:max_output]
                raise PodmanApiError(f"starting {where}", status, message)
            decoder = FrameDecoder(multiplexed=True)
            try:
                async for chunk in chunks:
                    for _, payload in decoder.feed(chunk):
                        output += payload[: max(0, max_output - len(output))]
            except LogFrameError as exc:
                raise PodmanApiError(f"reading {where}", status, str(exc)) from None

    async def pull(self, image: str, *, name: str = "", registry_auth: str | None = None) -> None:
        """Pull ``image`` unless present (ahead of an apply); ImageUnavailableError if not."""
        headers = {}
        if registry_auth:
            headers["X-Registry-Config"] = registry_config_header(name or image, registry_auth)
        response = await self.client.request(
            "POST",
            "/images/pull",
            query={"reference": image, "policy": "missing", "quiet": "true"},
            headers=headers,
            time_limit=self.play_timeout,
        )
        problem = "" if response.status == 200 else response.body.decode(errors="replace")
        for line in response.body.splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                problem = problem or str(json.loads(line).get("error") or "")
        if problem:
            raise ImageUnavailableError(f"pulling {image}", response.status, problem.strip())

    async def container_ids(self, name: str) -> dict[str, str]:
        """Container name -> id of the workload's application containers."""
        pod = await self._pod(name)
        return {
            short_name(pod, summary.get("Names", "")): str(summary["Id"])
            for summary in app_containers(pod)
        }

    # changing ----------------------------------------------------------------------------

    async def reconcile(self, desired: Mapping[str, WorkloadSpec]) -> ReconcileResult:
        """Make the pods match ``desired``; one workload's failure does not stop the others.

        PodmanUnreachableError is raised: nothing can be done until Podman answers.
        """
        the_plan = plan(desired, await self.list_workloads())
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        for name in the_plan.remove:
            steps.append((name, functools.partial(self.remove, name)))
        for name in (*the_plan.create, *the_plan.replace):
            steps.append((name, functools.partial(self.apply, desired[name])))
        for name in the_plan.start:
            steps.append((name, functools.partial(self.start, name)))
        errors: dict[str, WorkloadRuntimeError] = {}
        for name, step in steps:
            try:
                await step()
            except PodmanUnreachableError:
                raise
            except WorkloadRuntimeError as error:
                log.warning("workload %s: %s", name, error)
                errors[name] = error
        return ReconcileResult(the_plan, errors)

    async def apply(self, spec: WorkloadSpec) -> RunningWorkload:
        """Run ``spec`` as a pod, replacing the workload's pod if there is one.

        Either the pod runs afterwards or nothing of the workload is left (pod, secrets,
        files), and the error says why.
        """
        rendered = render(spec, files_root=self.files_root)
        headers = {"Content-Type": "application/x-yaml"}
        if spec.registry_auth:
            headers["X-Registry-Config"] = registry_config_header(spec.name, spec.registry_auth)
        await self.remove(spec.name)
        try:
            await asyncio.to_thread(_write_files, rendered)
            for secret in rendered.secrets:
                await self.client.call(
                    f"creating secret {secret.name}",
                    "POST",
                    "/secrets/create",
                    query={"name": secret.name},
                    body=secret.data,
                    headers={"Content-Type": "application/octet-stream"},
                )
            report = await self._play(rendered, headers)
        except BaseException:
            with contextlib.suppress(WorkloadRuntimeError):
                await self.remove(spec.name)
            raise
        pods = report.get("Pods") or [{}]
        return RunningWorkload(
            name=spec.name,
            pod_id=str(pods[0].get("ID", "")),
            spec_hash=rendered.spec_hash,
            status="Running",
            restart_policy=rendered.restart_policy,
            stop_timeout=rendered.stop_timeout,
        )

    async def start(self, name: str) -> None:
        pod = await self._pod(name)
        response = await self.client.request("POST", f"/pods/{quote(pod['Id'])}/start")
        if response.status not in (200, 304):
            raise api_error(f"starting workload {name}", response)

    async def remove(self, name: str) -> None:
        """Stop (with the pod's grace period) and remove the workload's pod, secrets, files.

        Removing a workload that does not exist is not an error.
        """
        for pod in await self._pods(name):
            labels = pod.get("Labels") or {}
            timeout = _int(labels.get(STOP_TIMEOUT_LABEL), 10)
            pod_id = quote(str(pod["Id"]))
            stopped = await self.client.request(
                "POST", f"/pods/{pod_id}/stop", query={"t": str(timeout)}, time_limit=timeout + 60
            )
            if stopped.status not in (200, 304, 404):
                log.warning("stopping workload %s: HTTP %s", name, stopped.status)
            removed = await self.client.request(
                "DELETE", f"/pods/{pod_id}", query={"force": "true"}, time_limit=timeout + 60
            )
            if removed.status not in (200, 404):
                raise api_error(f"removing workload {name}", removed)
        prefix = secret_prefix(name)
        for secret in await self.client.call("listing secrets", "GET", "/secrets/json") or []:
            secret_name = str((secret.get("Spec") or {}).get("Name", ""))
            if secret_name.startswith(prefix):
                response = await self.client.request("DELETE", f"/secrets/{quote(secret['ID'])}")
                if response.status not in (200, 204, 404):
                    raise api_error(f"removing secret {secret_name}", response)
        await asyncio.to_thread(shutil.rmtree, self.files_root / name, True)

    # logs --------------------------------------------------------------------------------

    async def logs(
        self, name: str, since: datetime | None = None, *, follow: bool = True
    ) -> AsyncGenerator[LogLine, None]:
        """Log lines of the workload's containers, interleaved as they come.

        Following ends when every container has stopped or was removed. Close the iterator
        (``contextlib.aclosing``) to stop reading early.
        """
        pod = await self._pod(name)
        containers = [
            ContainerRef(name, short_name(pod, summary.get("Names", "")), str(summary["Id"]))
            for summary in app_containers(pod)
        ]
        lines = follow_logs(
            self.client, containers, since, follow=follow, queue_size=self.log_queue_size
        )
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line

    # internals ---------------------------------------------------------------------------

    async def _pods(self, name: str | None = None) -> list[dict[str, Any]]:
        label = WORKLOAD_LABEL if name is None else f"{WORKLOAD_LABEL}={name}"
        pods = await self.client.call(
            "listing pods", "GET", "/pods/json", query={"filters": json.dumps({"label": [label]})}
        )
        return list(pods or [])

    async def _pod(self, name: str) -> dict[str, Any]:
        pods = await self._pods(name)
        if not pods:
            raise WorkloadNotFoundError(f"finding workload {name}", 404, "no such workload")
        pod: dict[str, Any] = pods[0]
        return pod

    async def _play(self, rendered: RenderedWorkload, headers: Mapping[str, str]) -> dict[str, Any]:
        name = rendered.name
        response = await self.client.request(
            "POST",
            "/play/kube",
            body=rendered.kube_yaml.encode(),
            headers=headers,
            time_limit=self.play_timeout,
        )
        if response.status != 200:
            raise _play_error(name, api_error(f"kube play of workload {name}", response))
        report: dict[str, Any] = response.json() or {}
        problems = [
            str(error)
            for pod in report.get("Pods") or []
            for error in pod.get("ContainerErrors") or []
        ]
        if problems:
            raise PodmanApiError(f"starting workload {name}", 500, "; ".join(problems))
        return report

    async def _container_state(
        self, pod: Mapping[str, Any], container_id: str, now: datetime
    ) -> ContainerState:
        inspect = await self.client.call(
            "inspecting container", "GET", f"/containers/{quote(container_id)}/json"
        )
        state = inspect.get("State") or {}
        running_for = None
        with contextlib.suppress(ValueError, TypeError):
            started = datetime.fromisoformat(str(state.get("StartedAt")))
            running_for = (now - started).total_seconds()
        return ContainerState(
            name=short_name(pod, str(inspect.get("Name", ""))),
            container_id=container_id,
            state=str(state.get("Status", "unknown")),
            exit_code=_int(state.get("ExitCode"), 0),
            restart_count=_int(inspect.get("RestartCount"), 0),
            running_for=running_for,
        )


def _container_health(
    pod: Mapping[str, Any], inspect: Mapping[str, Any], now: datetime
) -> ContainerHealth:
    state = inspect.get("State") or {}
    started = str(state.get("StartedAt") or "")
    running_for = None
    with contextlib.suppress(ValueError, TypeError):
        running_for = (now - datetime.fromisoformat(started)).total_seconds()
    restart = str(((inspect.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name"))
    return ContainerHealth(
        name=short_name(pod, str(inspect.get("Name", ""))),
        container_id=str(inspect.get("Id", "")),
        state=str(state.get("Status", "unknown")),
        exit_code=_int(state.get("ExitCode"), 0),
        restart_count=_int(inspect.get("RestartCount"), 0),
        started_at=started,
        running_for=running_for,
        error=str(state.get("Error") or ""),
        restart_policy=PODMAN_RESTART_POLICIES.get(restart, "Never"),
    )


def _play_error(name: str, error: PodmanApiError) -> WorkloadRuntimeError:
    text = error.message.lower()
    if any(hint in text for hint in IMAGE_ERROR_HINTS):
        return ImageUnavailableError(f"kube play of workload {name}", error.status, error.message)
    if any(hint in text for hint in MANIFEST_ERROR_HINTS):
        return InvalidManifestError(name, f"Podman rejects the manifest: {error.message}")
    return error


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _write_files(rendered: RenderedWorkload) -> None:
    shutil.rmtree(rendered.files_dir, ignore_errors=True)
    rendered.files_dir.mkdir(parents=True, mode=0o700)
    rendered.files_dir.chmod(0o700)
    for directory in rendered.directories:
        directory.mkdir(parents=True, exist_ok=True)
    for projected in rendered.files:
        projected.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(
            projected.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(projected.data)
        projected.path.chmod(projected.mode)

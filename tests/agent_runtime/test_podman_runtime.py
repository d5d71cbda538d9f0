"""PodmanRuntime against a real, isolated Podman 4.3 (see tests/fixtures/podman.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotta.agent.runtime import (
    ImageUnavailableError,
    InvalidManifestError,
    LogLine,
    PodmanRuntime,
    PodmanUnreachableError,
    WorkloadSpec,
    WorkloadState,
)
from flotta.agent.runtime.libpod import LibpodClient
from tests.fixtures.podman import PodmanTestEnv

pytestmark = pytest.mark.podman

# Exits promptly on SIGTERM (busybox sleep as PID 1 would ignore it for the whole grace period).
SERVE = "trap 'exit 0' TERM; while :; do sleep 1; done"

FETCH = (
    "import sys, urllib.request;"
    " print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())"
)


def pod_yaml(
    image: str,
    script: str,
    *,
    restart: str = "Always",
    extra: dict[str, Any] | None = None,
    spec_extra: dict[str, Any] | None = None,
) -> str:
    container: dict[str, Any] = {"name": "app", "image": image, "command": ["sh", "-c", script]}
    container.update(extra or {})
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 2,
        "containers": [container],
    }
    spec.update(spec_extra or {})
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": spec})


@pytest.fixture
async def runtime(podman_env: PodmanTestEnv, tmp_path: Path) -> AsyncIterator[PodmanRuntime]:
    podman_runtime = PodmanRuntime(podman_env.socket_path, files_root=tmp_path / "files")
    yield podman_runtime
    names = await podman_runtime.list_workloads()
    await asyncio.gather(*(podman_runtime.remove(name) for name in names))


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, limit: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {limit} s waiting for {what}")


async def phase_of(runtime: PodmanRuntime, name: str) -> WorkloadState | None:
    return (await runtime.phases()).get(name)


async def wait_phase(runtime: PodmanRuntime, name: str, phase: str) -> None:
    async def reached() -> bool:
        state = await phase_of(runtime, name)
        return state is not None and state.phase == phase

    await wait_for(reached, what=f"{name} to be {phase}")


async def read_logs(runtime: PodmanRuntime, name: str) -> list[LogLine]:
    async with contextlib.aclosing(runtime.logs(name, follow=False)) as lines:
        return [line async for line in lines]


async def log_text(runtime: PodmanRuntime, name: str) -> str:
    return "\n".join(line.text for line in await read_logs(runtime, name))


async def test_workload_runs_with_device_env_secret_and_export(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv, tmp_path: Path
) -> None:
    export = tmp_path / "export" / "sensor"
    script = (
        "echo device=$DEVICE_ID; echo token=$TOKEN; echo file=$(cat /creds/token);"
        " echo hello > /export/out.txt; " + SERVE
    )
    spec = WorkloadSpec(
        name="sensor",
        pod_yaml=pod_yaml(
            podman_env.image,
            script,
            extra={
                "env": [
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}},
                    }
                ],
                "volumeMounts": [{"name": "creds", "mountPath": "/creds"}],
            },
            spec_extra={"volumes": [{"name": "creds", "secret": {"secretName": "api"}}]},
        ),
        secrets={"api": {"token": b"s3cret"}},
        env={"DEVICE_ID": "device-42"},
        export_dir=export,
    )
    started = time.monotonic()
    applied = await runtime.apply(spec)
    play_seconds = time.monotonic() - started
    assert play_seconds < 30
    await wait_phase(runtime, "sensor", "Running")
    listed = await runtime.list_workloads()
    assert listed["sensor"].spec_hash == applied.spec_hash
    assert listed["sensor"].stop_timeout == 2

    async def wrote_export() -> bool:
        return (export / "out.txt").exists()

    await wait_for(wrote_export, what="the container to write /export/out.txt")
    assert (export / "out.txt").read_text() == "hello\n"
    text = await log_text(runtime, "sensor")
    assert "device=device-42" in text
    assert "token=s3cret" in text
    assert "file=s3cret" in text


async def test_unchanged_spec_is_kept_changed_spec_replaced_and_removal_cleans_up(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    spec = WorkloadSpec(
        name="web",
        pod_yaml=pod_yaml(podman_env.image, "echo v1; " + SERVE),
        secrets={"db": {"password": b"pw1"}},
    )
    with_secret = yaml.safe_load(spec.pod_yaml)
    with_secret["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "db"}}]
    spec = WorkloadSpec(
        name="web", pod_yaml=yaml.safe_dump(with_secret), secrets={"db": {"password": b"pw1"}}
    )
    first = await runtime.reconcile({"web": spec})
    assert first.plan.create == ("web",)
    assert first.errors == {}
    await wait_phase(runtime, "web", "Running")
    ids = await runtime.container_ids("web")

    again = await runtime.reconcile({"web": spec})
    assert again.plan.keep == ("web",)
    assert again.plan.is_empty
    assert await runtime.container_ids("web") == ids
    assert (await phase_of(runtime, "web")) is not None

    changed = WorkloadSpec(name="web", pod_yaml=spec.pod_yaml, secrets={"db": {"password": b"pw2"}})
    replaced = await runtime.reconcile({"web": changed})
    assert replaced.plan.replace == ("web",)
    assert replaced.errors == {}
    await wait_phase(runtime, "web", "Running")
    assert (await runtime.container_ids("web"))["app"] != ids["app"]

    def exec_echo() -> str:
        return subprocess.run(
            ["podman", "exec", "web-app", "sh", "-c", "echo $password"],
            env=podman_env.environment.process_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout.strip()

    async def sees_new_secret() -> bool:
        return await asyncio.to_thread(exec_echo) == "pw2"

    await wait_for(sees_new_secret, what="the replaced pod to see the new secret value")

    removed = await runtime.reconcile({})
    assert removed.plan.remove == ("web",)
    assert await runtime.list_workloads() == {}
    client = LibpodClient(podman_env.socket_path)
    secrets = await client.call("list", "GET", "/secrets/json")
    assert [s["Spec"]["Name"] for s in secrets if "web" in s["Spec"]["Name"]] == []


async def test_ports_without_host_port_do_not_collide_and_host_ports_work(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    httpd = (
        "mkdir -p /www && echo served-by-$HOSTNAME > /www/index.html && httpd -p 80 -h /www; "
        + SERVE
    )
    specs = {
        name: WorkloadSpec(
            name=name,
            pod_yaml=pod_yaml(podman_env.image, httpd, extra={"ports": [{"containerPort": 80}]}),
        )
        for name in ("web-a", "web-b")
    }
    specs["web-c"] = WorkloadSpec(
        name="web-c",
        pod_yaml=pod_yaml(
            podman_env.image, httpd, extra={"ports": [{"containerPort": 80, "hostPort": 18080}]}
        ),
    )
    result = await runtime.reconcile(specs)
    assert result.errors == {}
    for name in specs:
        await wait_phase(runtime, name, "Running")

    def fetch() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            podman_env.netns_argv([sys.executable, "-c", FETCH, "http://127.0.0.1:18080/"]),
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )

    async def served() -> bool:
        return (await asyncio.to_thread(fetch)).stdout.strip() == "served-by-web-c"

    await wait_for(served, what="web-c to answer on host port 18080")


async def test_crashing_container_with_restart_always_is_restarted(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    spec = WorkloadSpec(
        name="crashy", pod_yaml=pod_yaml(podman_env.image, "echo boom; sleep 0.3; exit 3")
    )
    await runtime.apply(spec)

    async def restarted_twice() -> bool:
        state = await phase_of(runtime, "crashy")
        return state is not None and state.restarts >= 2

    await wait_for(restarted_twice, what="Podman to restart the crashing container")
    state = await phase_of(runtime, "crashy")
    assert state is not None
    assert state.phase == "Failed"
    assert "crash-looping" in state.message or "exited with code 3" in state.message
    assert (await log_text(runtime, "crashy")).count("boom") >= 2


@pytest.mark.parametrize(("code", "phase"), [(0, "Exited"), (4, "Failed")])
async def test_restart_never_reports_how_the_container_ended(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv, code: int, phase: str
) -> None:
    spec = WorkloadSpec(
        name="job", pod_yaml=pod_yaml(podman_env.image, f"exit {code}", restart="Never")
    )
    await runtime.apply(spec)
    await wait_phase(runtime, "job", phase)
    state = await phase_of(runtime, "job")
    assert state is not None
    assert state.restarts == 0
    if code:
        assert "exited with code 4" in state.message


async def test_stopped_pod_with_restart_always_is_started_again(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    spec = WorkloadSpec(name="daemon", pod_yaml=pod_yaml(podman_env.image, SERVE))
    await runtime.apply(spec)
    await wait_phase(runtime, "daemon", "Running")
    client = LibpodClient(podman_env.socket_path)
    await client.call("stop", "POST", "/pods/daemon/stop", query={"t": "2"})
    assert (await runtime.list_workloads())["daemon"].status in ("Exited", "Stopped")

    result = await runtime.reconcile({"daemon": spec})
    assert result.plan.start == ("daemon",)
    assert result.errors == {}

    # The agent reconciles level-triggered (every resync period): a start that raced with
    # Podman's clean-up of the stopped containers is simply made again by the next pass.
    async def running_after_reconcile() -> bool:
        state = await phase_of(runtime, "daemon")
        if state is not None and state.phase == "Running":
            return True
        again = await runtime.reconcile({"daemon": spec})
        assert again.errors == {}
        return False

    await wait_for(running_after_reconcile, limit=60.0, what="daemon to be Running again")


async def test_configmaps_reach_env_and_files(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    configmap = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"color": "blue", "app.conf": "level=debug\n"},
        }
    )
    spec = WorkloadSpec(
        name="configured",
        pod_yaml=pod_yaml(
            podman_env.image,
            "echo color=$COLOR; echo conf=$(cat /etc/app/app.conf); " + SERVE,
            extra={
                "env": [
                    {
                        "name": "COLOR",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}},
                    }
                ],
                "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}],
            },
            spec_extra={"volumes": [{"name": "conf", "configMap": {"name": "settings"}}]},
        ),
        configmaps=[configmap],
    )
    await runtime.apply(spec)

    async def logged() -> bool:
        text = await log_text(runtime, "configured")
        return "color=blue" in text and "conf=level=debug" in text

    await wait_for(logged, what="the ConfigMap values in the logs")


async def test_registry_auth_is_accepted(runtime: PodmanRuntime, podman_env: PodmanTestEnv) -> None:
    auth = base64.b64encode(b"robot:secret").decode()
    spec = WorkloadSpec(
        name="private",
        pod_yaml=pod_yaml(podman_env.image, SERVE),
        registry_auth=json.dumps({"auths": {"registry.example.com": {"auth": auth}}}),
    )
    await runtime.apply(spec)
    await wait_phase(runtime, "private", "Running")


async def test_followed_logs_stream_lines_and_close_cleanly(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    script = (
        "i=0; trap 'exit 0' TERM;"
        " while :; do i=$((i+1)); echo tick $i; echo warn $i >&2; sleep 0.2; done"
    )
    await runtime.apply(WorkloadSpec(name="chatty", pod_yaml=pod_yaml(podman_env.image, script)))
    seen: list[LogLine] = []
    async with asyncio.timeout(20), contextlib.aclosing(runtime.logs("chatty")) as lines:
        async for line in lines:
            seen.append(line)
            if sum(1 for item in seen if item.stream == "stdout") >= 5:
                break
    ticks = [line.text for line in seen if line.stream == "stdout"]
    assert ticks[:3] == ["tick 1", "tick 2", "tick 3"]
    assert any(line.stream == "stderr" and line.text.startswith("warn") for line in seen)
    assert all(line.container == "app" and line.workload == "chatty" for line in seen)
    assert all(line.time is not None for line in seen)


async def test_missing_image_fails_clearly_and_leaves_nothing(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    spec = WorkloadSpec(
        name="ghost",
        pod_yaml=pod_yaml("localhost/flotta/does-not-exist:1", SERVE),
        secrets={"s": {"k": b"v"}},
    )
    with pytest.raises(ImageUnavailableError, match="does-not-exist"):
        await runtime.apply(spec)
    assert "ghost" not in await runtime.list_workloads()
    result = await runtime.reconcile({"ghost": spec})
    assert isinstance(result.errors["ghost"], ImageUnavailableError)


async def test_invalid_manifest_fails_before_podman(runtime: PodmanRuntime) -> None:
    spec = WorkloadSpec(name="broken", pod_yaml="kind: Pod\nspec: {containers: []}")
    with pytest.raises(InvalidManifestError, match="at least one container"):
        await runtime.apply(spec)


async def test_unreachable_socket_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sock"
    offline = PodmanRuntime(missing, files_root=tmp_path / "files")
    with pytest.raises(PodmanUnreachableError, match=str(missing)):
        await offline.list_workloads()
    with pytest.raises(PodmanUnreachableError):
        await offline.reconcile({"w": WorkloadSpec(name="w", pod_yaml="spec: {}")})


async def test_logs_since_skip_earlier_lines(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv
) -> None:
    script = "i=0; trap 'exit 0' TERM; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"
    await runtime.apply(WorkloadSpec(name="ticker", pod_yaml=pod_yaml(podman_env.image, script)))
    await asyncio.sleep(1.5)
    since = datetime.now(UTC)
    await asyncio.sleep(1.0)
    async with contextlib.aclosing(runtime.logs("ticker", since, follow=False)) as lines:
        ticks = [int(line.text.split()[1]) async for line in lines]
    assert ticks
    assert ticks[0] > 3
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))


async def test_closing_logs_early_with_a_full_queue_does_not_hang(
    podman_env: PodmanTestEnv, tmp_path: Path
) -> None:
    small = PodmanRuntime(podman_env.socket_path, files_root=tmp_path / "f", log_queue_size=1)
    script = "trap 'exit 0' TERM; while :; do echo a; echo b >&2; sleep 0.05; done"
    await small.apply(WorkloadSpec(name="flood", pod_yaml=pod_yaml(podman_env.image, script)))
    try:
        await asyncio.sleep(1.0)  # a backlog for both streams
        async with asyncio.timeout(15):
            async with contextlib.aclosing(small.logs("flood")) as lines:
                first = await anext(lines)
            assert first.text in ("a", "b")
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("logs flood")] == []
    finally:
        await small.remove("flood")


@pytest.fixture
def registry_record(podman_env: PodmanTestEnv, tmp_path: Path) -> Iterator[Path]:
    """A credentials-recording registry at ``podman_env.registry``; its request record."""
    record = tmp_path / "registry.jsonl"
    ready = Path(f"{record}.ready")
    port = podman_env.registry.rsplit(":", 1)[1]
    script = str(Path(__file__).with_name("fake_registry.py"))
    registry = subprocess.Popen(podman_env.netns_argv([sys.executable, script, port, str(record)]))
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert registry.poll() is None, "the test registry exited"
            assert time.monotonic() < deadline, "the test registry did not start"
            time.sleep(0.05)
        yield record
    finally:
        registry.terminate()
        registry.wait(10)


async def test_registry_credentials_reach_the_registry(
    runtime: PodmanRuntime, podman_env: PodmanTestEnv, registry_record: Path
) -> None:
    token = base64.b64encode(b"robot:s3cret").decode()
    spec = WorkloadSpec(
        name="private",
        pod_yaml=pod_yaml(f"{podman_env.registry}/flotta/app:1", SERVE),
        registry_auth=json.dumps({"auths": {podman_env.registry: {"auth": token}}}),
    )
    with pytest.raises(ImageUnavailableError, match="flotta/app"):
        await runtime.apply(spec)
    record = await asyncio.to_thread(registry_record.read_text)
    requests = [json.loads(line) for line in record.splitlines()]
    manifest_requests = [r for r in requests if "/manifests/" in r["path"]]
    assert manifest_requests
    assert {r["authorization"] for r in manifest_requests} == {f"Basic {token}"}

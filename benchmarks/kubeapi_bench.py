"""Benchmark of the local Kubernetes API (``flotta dev kube-api``).

Starts the server as its own process, installs the project's CRDs, then measures:
creating N EdgeDevices, listing them with and without a label selector (10 % match),
a watcher following status patches sent at a target rate, the server's RSS and the
SQLite file size. Prints a Markdown report (``--out`` writes it to a file too).

    .venv/bin/python benchmarks/kubeapi_bench.py --devices 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
GROUP_PATH = "/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgedevices"


class Client:
    def __init__(
        self, session: aiohttp.ClientSession, url: str, token: str, context: ssl.SSLContext
    ) -> None:
        self.session, self.url, self.context = session, url, context
        self.headers = {"Authorization": f"Bearer {token}"}

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        headers = dict(self.headers, **{"Content-Type": content_type})
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method, self.url + path, data=data, headers=headers, ssl=self.context
        ) as response:
            payload = await response.read()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
            return json.loads(payload)


def _device(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "management.project-flotta.io/v1alpha1",
        "kind": "EdgeDevice",
        "metadata": {
            "name": f"device-{index:05d}",
            "labels": {"site": f"site-{index % 10}", "flotta/member-of": f"set-{index % 50}"},
        },
        "spec": {
            "requestTime": "2026-11-23T10:00:00Z",
            "heartbeat": {
                "periodSeconds": 60,
                "hardwareProfile": {"include": True, "scope": "full"},
            },
            "osInformation": {"automaticallyUpgrade": True, "commitID": "8f1c2d9e"},
            "metrics": {"system": {"interval": 60}},
        },
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _timed(coroutine: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await coroutine
    return result, time.perf_counter() - start


async def create_devices(client: Client, count: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await client.request("POST", GROUP_PATH, _device(index))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def watch_under_patches(
    client: Client, devices: int, rate: int, seconds: float, concurrency: int
) -> dict[str, float]:
    listed = await client.request("GET", f"{GROUP_PATH}?limit=1")
    start_version = listed["metadata"]["resourceVersion"]
    sent_at: dict[str, float] = {}
    lags: list[float] = []
    total = int(rate * seconds)
    received = asyncio.Event()

    async def watcher() -> None:
        query = f"watch=true&resourceVersion={start_version}&timeoutSeconds={int(seconds) + 60}"
        url = f"{client.url}{GROUP_PATH}?{query}"
        async with client.session.get(
            url,
            headers=client.headers,
            ssl=client.context,
            timeout=aiohttp.ClientTimeout(total=None),
        ) as response:
            async for line in response.content:
                event = json.loads(line)
                marker = (event["object"].get("status") or {}).get("desiredVersion")
                if marker in sent_at:
                    lags.append(time.perf_counter() - sent_at[marker])
                    if len(lags) == total:
                        received.set()
                        return

    watch_task = asyncio.create_task(watcher())
    await asyncio.sleep(0.5)
    semaphore = asyncio.Semaphore(concurrency)
    errors = 0

    async def patch(sequence: int) -> None:
        nonlocal errors
        marker = f"seq-{sequence}"
        name = f"device-{sequence % devices:05d}"
        body = {
            "status": {
                "phase": "Online",
                "desiredVersion": marker,
                "lastSeenTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }
        async with semaphore:
            sent_at[marker] = time.perf_counter()
            try:
                await client.request(
                    "PATCH", f"{GROUP_PATH}/{name}/status", body, "application/merge-patch+json"
                )
            except RuntimeError:
                errors += 1

    begin = time.perf_counter()
    tasks = []
    for sequence in range(total):
        due = begin + sequence / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(patch(sequence)))
    await asyncio.gather(*tasks)
    patch_elapsed = time.perf_counter() - begin
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(received.wait(), 60)
    drained = time.perf_counter() - begin
    watch_task.cancel()
    await asyncio.gather(watch_task, return_exceptions=True)
    ordered = sorted(lags)
    return {
        "patches": total,
        "errors": errors,
        "patch_rate": total / patch_elapsed,
        "events": len(lags),
        "event_rate": len(lags) / drained,
        "lag_p50_ms": 1000 * statistics.median(ordered) if ordered else float("nan"),
        "lag_p99_ms": 1000 * ordered[int(len(ordered) * 0.99) - 1] if ordered else float("nan"),
        "lag_max_ms": 1000 * ordered[-1] if ordered else float("nan"),
        "drain_s": drained - patch_elapsed,
    }


async def run(args: argparse.Namespace, url: str, token: str, ca: Path, pid: int) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    crds = [
        yaml.safe_load(p.read_text()) for p in sorted((REPO / "deploy" / "crds").glob("*.yaml"))
    ]
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    figures: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, url, token, context)
        for crd in crds:
            await client.request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
            )
        figures["rss_empty"] = _rss_mib(pid)
        figures["create_s"] = await create_devices(client, args.devices, args.concurrency)
        figures["all"] = await _timed(client.request("GET", GROUP_PATH))
        figures["selected"] = await _timed(
            client.request("GET", f"{GROUP_PATH}?labelSelector=site%3Dsite-3")
        )
        figures["paged"] = await _timed(client.request("GET", f"{GROUP_PATH}?limit=500"))
        figures["rss_loaded"] = _rss_mib(pid)
        cpu_before = _cpu_seconds(pid)
        figures["watch"] = await watch_under_patches(
            client, args.devices, args.rate, args.seconds, args.concurrency
        )
        figures["server_cpu_ms_per_patch"] = (
            1000 * (_cpu_seconds(pid) - cpu_before) / figures["watch"]["patches"]
        )
        figures["rss_after"] = _rss_mib(pid)
    return figures


def report(args: argparse.Namespace, figures: dict[str, Any], database_bytes: int) -> str:
    watch = figures["watch"]
    count = args.devices

    def listing(key: str) -> str:
        body, seconds = figures[key]
        return f"{seconds * 1000:.0f} ms ({len(body['items'])} items)"

    rows = [
        (
            f"create {count} EdgeDevices ({args.concurrency} concurrent requests)",
            f"{figures['create_s']:.1f} s ({count / figures['create_s']:.0f}/s)",
        ),
        ("list all", listing("all")),
        ("list with labelSelector site=site-3 (10 %)", listing("selected")),
        ("list first page, limit=500", listing("paged")),
        (
            f"status patches sent (target {args.rate}/s for {args.seconds:.0f} s)",
            f"{watch['patches']:.0f} at {watch['patch_rate']:.0f}/s, {watch['errors']:.0f} errors",
        ),
        ("watch events received", f"{watch['events']:.0f} ({watch['event_rate']:.0f}/s)"),
        (
            "watcher lag p50 / p99 / max",
            f"{watch['lag_p50_ms']:.0f} / {watch['lag_p99_ms']:.0f} / {watch['lag_max_ms']:.0f} ms",
        ),
        ("watcher caught up after the last patch", f"{watch['drain_s']:.2f} s"),
        (
            "server CPU per status patch (HTTP, validation, SQLite commit, watch fan-out)",
            f"{figures['server_cpu_ms_per_patch']:.2f} ms",
        ),
        (
            f"server RSS: empty / {count} devices / after the patches",
            " / ".join(f"{figures[key]:.0f}" for key in ("rss_empty", "rss_loaded", "rss_after"))
            + " MiB",
        ),
        (f"SQLite size (db + WAL) at {count} devices", f"{database_bytes / 1024 / 1024:.1f} MiB"),
    ]
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    machine = (
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}),"
        f" Python {platform.python_version()}, {platform.system()} {platform.release()};"
        f" client and server on the same machine; load average after the run {load}."
    )
    command = (
        f"Command: `benchmarks/kubeapi_bench.py --devices {count} --rate {args.rate}"
        f" --seconds {args.seconds} --concurrency {args.concurrency}`"
    )
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}",
        "",
        machine,
        command,
        "",
    ]
    lines += ["| measurement | result |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join([*lines, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="status patches per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, help="append the report to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubeapi-bench-") as directory:
        state = Path(directory)
        environment = dict(
            os.environ, PYTHONPATH=os.pathsep.join(str(REPO / d) for d in ("schemas", "deploy"))
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flotta.cli",
                "--log-level",
                "WARNING",
                "dev",
                "kube-api",
                "--state-dir",
                str(state),
            ],
            env=environment,
        )
        try:
            deadline = time.monotonic() + 30
            while not (state / "kubeconfig").exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            config = yaml.safe_load((state / "kubeconfig").read_text())
            url = config["clusters"][0]["cluster"]["server"]
            token = config["users"][0]["user"]["token"]
            figures = asyncio.run(run(args, url, token, state / "ca.crt", process.pid))
            database_bytes = sum(p.stat().st_size for p in state.glob("state.db*"))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    text = report(args, figures, database_bytes)
    print(text)
    if args.out:
        with args.out.open("a") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

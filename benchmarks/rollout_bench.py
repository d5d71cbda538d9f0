"""Rollout benchmark: the whole control plane on loopback (as ``fleet_bench.py`` starts it)
and a simulated fleet, batches of 1 %, 10 %, 50 %, 100 % with a success threshold of 95 %.

    .venv/bin/python benchmarks/rollout_bench.py --devices 1000 [--processes 1]

Two EdgeWorkloads select every device: ``plain`` (no policy) and ``rolled`` (the policy).
Measured, in one run:

- fan-out: patch ``plain``; seconds until every device acknowledged the new version (the
  simulator's own reports), the floor a rollout is held to;
- good rollout: patch ``rolled``; seconds until ``status.rollout.phase`` is Complete, and until
  every device acknowledged it. Goal: at most 1.5x the fan-out, after subtracting the configured
  waits (none here: simulated devices pass their health gate at once, no approval or pause);
- bad rollout: every simulated device fails the image (``faults.json``, mode ``exit``, as the
  agent does: reports the version failed and keeps the previous one); patch ``rolled`` to it;
  seconds until Halted, and the share of the fleet that ever got the bad revision (goal: at most
  1 %). Simulated devices fail before they apply, so their time back on the previous version is
  0 s by construction; the real agent's rollback time is measured by the agent's own tests.

Results go on top of ``benchmarks/results/rollout.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet_bench as fleet  # noqa: E402 (benchmarks/fleet_bench.py)
from history import earlier_runs, record  # noqa: E402
from kubernetes import client  # noqa: E402

from flotta.dev.simulator.provision import provision  # noqa: E402
from flotta.dev.simulator.shards import device_ids  # noqa: E402

RESULTS = HERE / "results" / "rollout.md"
GOAL_RATIO = 1.5
GOAL_BAD_SHARE = 0.01
POLL = 0.05  # seconds between reads of status.rollout
POLICY = {
    "batches": [{"limit": "1%"}, {"limit": "10%"}, {"limit": "50%"}, {"limit": "100%"}],
    "successThreshold": "95%",
    "batchTimeout": "10m",
}


def rolled(image: str) -> dict[str, Any]:
    body = fleet.workload("0")
    body["metadata"]["name"] = "rolled"
    spec = body["spec"]
    spec["pod"]["spec"]["containers"][0]["image"] = image
    spec["rolloutPolicy"] = POLICY
    return body


def rollout_status(objects: client.CustomObjectsApi) -> dict[str, Any]:
    obj: dict[str, Any] = objects.get_namespaced_custom_object(  # type: ignore[assignment]
        fleet.GROUP, fleet.VERSION, fleet.NAMESPACE, "edgeworkloads", "rolled"
    )
    status: dict[str, Any] = (obj.get("status") or {}).get("rollout") or {}
    return status


async def until_phase(
    objects: client.CustomObjectsApi, phase: str, revision: int, limit: float
) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    while True:
        status = await asyncio.to_thread(rollout_status, objects)
        if status.get("phase") == phase and status.get("revision") == revision:
            return time.perf_counter() - start, status
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"revision {revision} not {phase} after {limit:.0f} s: {status}")
        await asyncio.sleep(POLL)


def patch(objects: client.CustomObjectsApi, name: str, spec: dict[str, Any]) -> None:
    objects.patch_namespaced_custom_object(
        fleet.GROUP, fleet.VERSION, fleet.NAMESPACE, "edgeworkloads", name, {"spec": spec}
    )


async def run(devices: int, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"devices": devices}
    work = Path(tempfile.mkdtemp(prefix=f"rollout-bench-{devices}-"))
    stack = fleet.Stack(work, devices, args.processes)
    ids = device_ids(fleet.PREFIX, devices)
    try:
        print(f"== {devices} devices (work dir {work})", flush=True)
        stack.start_control_plane()
        assert stack.api is not None
        objects = client.CustomObjectsApi(stack.api)
        plain = fleet.workload("0")
        plain["metadata"]["name"] = "plain"
        for body in (plain, rolled("localhost/flotta/busybox:1")):
            objects.create_namespaced_custom_object(
                fleet.GROUP, fleet.VERSION, fleet.NAMESPACE, "edgeworkloads", body
            )
        await asyncio.to_thread(fleet.create_devices, stack.api, ids)
        await asyncio.to_thread(provision, stack.pki, work / "devices", ids, namespace="default")
        since = time.time()
        stack.start_simulator()
        await fleet.wait_for(
            lambda: stack.simulator_report().online_since(since), devices, args.timeout, "online"
        )
        result["initial_s"], _ = await until_phase(objects, "Complete", 1, args.timeout)
        print(f"  revision 1 (from nothing) complete after {result['initial_s']:.1f} s", flush=True)
        result["drain_s"] = await stack.settle_writes(args.drain)
        await asyncio.sleep(args.settle)

        # The floor: a plain fan-out to every device.
        start_wall = time.time()
        patch(objects, "plain", fleet.workload("1")["spec"])
        await fleet.wait_for(
            lambda: stack.simulator_report().changed_since(start_wall),
            devices,
            args.timeout,
            "fan-out",
        )
        result["fanout_s"] = stack.simulator_report().last_change - start_wall
        print(f"  fan-out: every device acknowledged in {result['fanout_s']:.2f} s", flush=True)
        result["fanout_drain_s"] = await stack.settle_writes(args.drain)
        await asyncio.sleep(args.settle)

        # A good revision in batches.
        start_wall = time.time()
        patch(objects, "rolled", rolled("localhost/flotta/busybox:2")["spec"])
        result["good_s"], good = await until_phase(objects, "Complete", 2, args.timeout)
        result["good_acked_s"] = stack.simulator_report().last_change - start_wall
        result["good_updated"] = good.get("updatedDevices")
        result["ratio"] = result["good_s"] / result["fanout_s"]
        print(
            f"  good rollout: complete after {result['good_s']:.1f} s (devices acknowledged "
            f"after {result['good_acked_s']:.1f} s), {result['ratio']:.1f}x the fan-out",
            flush=True,
        )
        result["good_drain_s"] = await stack.settle_writes(args.drain)
        await asyncio.sleep(args.settle)

        # A bad revision: every device that gets it fails it and keeps the previous one.
        faults = work / "devices" / "faults.json"
        faults.write_text(json.dumps([{"image": "broken", "mode": "exit"}]))
        await asyncio.sleep(2.5)  # the simulator looks at the file every second
        patch(objects, "rolled", rolled("localhost/flotta/busybox:broken")["spec"])
        result["halt_s"], halted = await until_phase(objects, "Halted", 3, args.timeout)
        await asyncio.sleep(5)  # late reports of the batch
        halted = await asyncio.to_thread(rollout_status, objects)
        got = sum(
            halted.get(k) or 0 for k in ("updatedDevices", "updatingDevices", "failedDevices")
        )
        result["bad_got"] = got
        result["bad_share"] = got / devices
        result["bad_failed"] = halted.get("failedDevices")
        print(
            f"  bad rollout: halted after {result['halt_s']:.1f} s; {got} devices "
            f"({result['bad_share']:.2%}) ever got the bad revision",
            flush=True,
        )
    except (TimeoutError, RuntimeError) as exc:
        result["error"] = str(exc)
        print(f"  error: {exc}", flush=True)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def report(results: list[dict[str, Any]], where: str) -> str:
    lines = [
        "# Rollout benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {where}. "
        "`benchmarks/rollout_bench.py`: batches 1 %, 10 %, 50 %, 100 %, threshold 95 %; "
        "simulated devices pass their health gate at once (no configured waits).",
        "",
        "| devices | fan-out s | good rollout s (acked) | ratio (goal <= 1.5) | halt s "
        "| got the bad revision (goal <= 1 %) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['devices']} | error: {r['error']} |||||")
            continue
        verdict = "met" if r["ratio"] <= GOAL_RATIO else "missed"
        bad = "met" if r["bad_share"] <= GOAL_BAD_SHARE else "missed"
        lines.append(
            f"| {r['devices']} | {r['fanout_s']:.2f} | {r['good_s']:.1f} ({r['good_acked_s']:.1f})"
            f" | {r['ratio']:.1f}x ({verdict}) | {r['halt_s']:.1f} "
            f"| {r['bad_got']} ({r['bad_share']:.2%}, {bad}) |"
        )
    lines += [
        "",
        "The operator reads the devices' status reports while a rollout is under way and "
        "evaluates the rollout as soon as a device's versions change, so a batch starts once "
        "its predecessor's devices report healthy, not once the bridge's rate-limited "
        "EdgeDevice writes reach the API. The good rollout's time runs until "
        "`status.rollout.phase` says Complete (polled every 0.05 s). Simulated devices fail a "
        "bad version before applying it, so their time back on the previous version is 0 s.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1000", help="fleet sizes, comma separated")
    parser.add_argument("--processes", type=int, default=1, help="simulator processes")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before a phase")
    parser.add_argument("--drain", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per wait")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    earlier = earlier_runs(args.out)
    where = fleet.machine()  # its load average is the one at the start
    results = [asyncio.run(run(int(size), args)) for size in args.devices.split(",")]
    record(args.out, report(results, where), earlier)
    print(f"results written to {args.out}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

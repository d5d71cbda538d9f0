"""Rollout benchmark: the whole control plane on loopback (as ``fleet_bench.py`` starts it)
and a simulated fleet, batches of 1 %, 10 %, 50 %, 100 % with a success threshold of 95 %.

    .venv/bin/python benchmarks/rollout_bench.py --devices 1000 [--processes 1] [--good-only]

Two EdgeWorkloads select every device: ``plain`` (no policy) and ``rolled`` (the policy).
Measured, in one run:

- fan-out: patch ``plain``; seconds until every device acknowledged the new version (the
  simulator's own reports), the floor a rollout is held to;
- good rollout: patch ``rolled``; seconds until ``status.rollout.phase`` is Complete, and until
  every device acknowledged it. Goal: at most 1.5x the fan-out, after subtracting the configured
  waits (none here: simulated devices pass their health gate at once, no approval or pause);
  the desired states the operator assembled for each (its reconcile counter): a rollout
  assembles each device's once, as the fan-out does; and the CPU seconds each process of the
  stack used in each;
- bad rollouts: the simulated devices fail a bad image as the agent does (``faults.json``):
  they apply it (report it applying), run it until it fails, roll back and report it failed
  and rolled back. Two cases, each with a short health gate in the revision (timeout 20 s):
  ``exits`` (the container exits 5 s after the apply started) and ``gate timeout`` (the
  version never becomes healthy: it fails at the gate's timeout). For each, seconds until
  Halted; the share of the fleet that ever ran the bad version (goal: at most 1 %); and per
  device that ran it, the seconds from receiving the bad version to the broker's
  acknowledgement of its report that it rolled back (the simulator's own clock; goal: within
  the gate's timeout + 5 s).

Results go on top of ``benchmarks/results/rollout.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
RECONCILES = "flotta_operator_reconciles_total"  # desired states the operator assembled
POLICY = {
    "batches": [{"limit": "1%"}, {"limit": "10%"}, {"limit": "50%"}, {"limit": "100%"}],
    "successThreshold": "95%",
    "batchTimeout": "10m",
}
HEALTH_GATE = {"stabilizationSeconds": 10, "timeoutSeconds": 20}  # the bad revisions'
ROLLBACK_GOAL = HEALTH_GATE["timeoutSeconds"] + 5.0
EXIT_AFTER = 5.0
# (case, image, fault rule): the simulated devices fail these images
BAD_CASES = (
    ("exits", "broken", {"image": "broken", "mode": "exit", "after": EXIT_AFTER}),
    ("gate timeout", "stuck", {"image": "stuck", "mode": "timeout"}),
)
LATE_REPORTS = 5.0  # seconds after the halt for the batch's last devices to receive and fail


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


def cpu_now(stack: fleet.Stack) -> dict[str, float]:
    return {name: fleet.cpu_seconds(pid) for name, pid in stack.pids().items()}


def cpu_since(stack: fleet.Stack, before: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process of the stack used since ``before``."""
    return {name: used - before.get(name, 0.0) for name, used in cpu_now(stack).items()}


def cpu_text(r: dict[str, Any]) -> str:
    names = [n for n in r["fanout_cpu"] if n in r["good_cpu"] and n != "benchmark"]
    return ", ".join(f"{n} {r['fanout_cpu'][n]:.1f}, {r['good_cpu'][n]:.1f}" for n in names)


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
        reconciles = stack.operator_metric(RECONCILES)
        cpu = cpu_now(stack)
        start_wall = time.time()
        patch(objects, "plain", fleet.workload("1")["spec"])
        await fleet.wait_for(
            lambda: stack.simulator_report().changed_since(start_wall),
            devices,
            args.timeout,
            "fan-out",
        )
        result["fanout_s"] = stack.simulator_report().last_change - start_wall
        result["fanout_cpu"] = cpu_since(stack, cpu)
        print(f"  fan-out: every device acknowledged in {result['fanout_s']:.2f} s", flush=True)
        result["fanout_drain_s"] = await stack.settle_writes(args.drain)
        result["fanout_reconciles"] = stack.operator_metric(RECONCILES) - reconciles
        await asyncio.sleep(args.settle)

        # A good revision in batches.
        reconciles = stack.operator_metric(RECONCILES)
        cpu = cpu_now(stack)
        start_wall = time.time()
        patch(objects, "rolled", rolled("localhost/flotta/busybox:2")["spec"])
        result["good_s"], good = await until_phase(objects, "Complete", 2, args.timeout)
        result["good_cpu"] = cpu_since(stack, cpu)
        result["good_acked_s"] = stack.simulator_report().last_change - start_wall
        result["good_updated"] = good.get("updatedDevices")
        result["ratio"] = result["good_s"] / result["fanout_s"]
        print(
            f"  good rollout: complete after {result['good_s']:.1f} s (devices acknowledged "
            f"after {result['good_acked_s']:.1f} s), {result['ratio']:.2f}x the fan-out",
            flush=True,
        )
        result["good_drain_s"] = await stack.settle_writes(args.drain)
        result["good_reconciles"] = stack.operator_metric(RECONCILES) - reconciles
        print(
            f"  reconciles: {result['fanout_reconciles']:.0f} for the fan-out, "
            f"{result['good_reconciles']:.0f} for the good rollout; CPU s (fan-out, rollout): "
            + cpu_text(result),
            flush=True,
        )
        if args.good_only:
            return result
        await asyncio.sleep(args.settle)

        # Bad revisions: every device that gets one runs it until it fails, then rolls back.
        faults = work / "devices" / "faults.json"
        faults.write_text(json.dumps([rule for _, _, rule in BAD_CASES]))
        await asyncio.sleep(2.5)  # the simulator looks at the file every second
        result["bad"] = []
        for number, (case, image, _) in enumerate(BAD_CASES, start=3):
            bad = await bad_rollout(stack, objects, devices, case, image, number, args)
            result["bad"].append(bad)
            await asyncio.sleep(args.settle)
    except (TimeoutError, RuntimeError) as exc:
        result["error"] = str(exc)
        print(f"  error: {exc}", flush=True)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


async def bad_rollout(
    stack: fleet.Stack,
    objects: client.CustomObjectsApi,
    devices: int,
    case: str,
    image: str,
    revision: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Roll out a bad image; how far it got and how long each device that ran it took to be
    back on the previous version."""
    result: dict[str, Any] = {"case": case}
    spec = rolled(f"localhost/flotta/busybox:{image}")["spec"]
    spec["rolloutPolicy"] = {**POLICY, "healthGate": HEALTH_GATE}
    start_wall = time.time()
    patch(objects, "rolled", spec)
    result["halt_s"], _ = await until_phase(objects, "Halted", revision, args.timeout)
    halted_at = time.perf_counter()
    # Every device that received the bad version reports it rolled back, within the goal.
    while True:
        runs = stack.simulator_report().rollbacks_since(start_wall)
        waited = time.perf_counter() - halted_at
        if waited >= LATE_REPORTS and all(reported for _, reported in runs):
            break
        if waited > ROLLBACK_GOAL + 60:
            break
        await asyncio.sleep(0.5)
    status = await asyncio.to_thread(rollout_status, objects)
    backs = sorted(reported - received for received, reported in runs if reported)
    result["ran"] = len(runs)
    result["share"] = len(runs) / devices
    result["counted"] = sum(
        status.get(k) or 0 for k in ("updatedDevices", "updatingDevices", "failedDevices")
    )
    result["not_back"] = sum(1 for _, reported in runs if not reported)
    result["back_median_s"] = backs[len(backs) // 2] if backs else None
    result["back_max_s"] = backs[-1] if backs else None
    result["over_goal"] = sum(1 for seconds in backs if seconds > ROLLBACK_GOAL)
    result["load"] = os.getloadavg()
    print(
        f"  bad rollout ({case}): halted after {result['halt_s']:.1f} s; {len(runs)} devices "
        f"({result['share']:.2%}) ran the bad version (the operator counted "
        f"{result['counted']}); back on the previous version after "
        f"{fleet.fmt(result['back_median_s'])} s (median), {fleet.fmt(result['back_max_s'])} s "
        f"(max), {result['over_goal']} over {ROLLBACK_GOAL:.0f} s, {result['not_back']} not "
        f"back; load average {result['load'][0]:.1f}",
        flush=True,
    )
    return result


def report(results: list[dict[str, Any]], where: str) -> str:
    lines = [
        "# Rollout benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {where}. "
        "`benchmarks/rollout_bench.py`: batches 1 %, 10 %, 50 %, 100 %, threshold 95 %; "
        "simulated devices pass a good version's health gate at once (no configured waits).",
        "",
        "| devices | fan-out s | good rollout s (acked) | ratio (goal <= 1.5) "
        "| reconciles: fan-out, rollout |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['devices']} | error: {r['error']} ||||")
            continue
        verdict = "met" if r["ratio"] <= GOAL_RATIO else "missed"
        lines.append(
            f"| {r['devices']} | {r['fanout_s']:.2f} | {r['good_s']:.1f} ({r['good_acked_s']:.1f})"
            f" | {r['ratio']:.2f}x ({verdict}) "
            f"| {r['fanout_reconciles']:.0f}, {r['good_reconciles']:.0f} |"
        )
    for r in results:
        if "good_cpu" in r:
            lines += [
                "",
                f"CPU seconds at {r['devices']} devices (fan-out, rollout): {cpu_text(r)}.",
            ]
    if not any(r.get("bad") for r in results):
        lines += ["", "Good version only (`--good-only`): no bad version rolled out."]
    else:
        lines += bad_lines(results)
    lines += [
        "",
        "The operator reads the devices' status reports while a rollout is under way and "
        "evaluates the rollout when a report may move it (its batch reaches the threshold or "
        "can no longer reach it), so a batch starts once its predecessor's devices report "
        "healthy, not once the bridge's rate-limited EdgeDevice writes reach the API; other "
        "reports cost no evaluation. A spec change assembles only the devices a batch admits. "
        "The good rollout's time runs until `status.rollout.phase` says Complete (polled every "
        "0.05 s).",
    ]
    return "\n".join(lines)


def bad_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        f"Bad versions (health gate: timeout {HEALTH_GATE['timeoutSeconds']} s, stabilisation "
        f"{HEALTH_GATE['stabilizationSeconds']} s; `exits`: the container exits {EXIT_AFTER:.0f} s "
        "into the apply; `gate timeout`: never healthy). Back: from the device receiving the "
        "bad version to the broker acknowledging its report that it rolled back, per device "
        "that ran it.",
        "",
        "| devices | bad version | halt s | ran it (goal <= 1 %) | operator counted "
        f"| back, median / max s | over {ROLLBACK_GOAL:.0f} s (goal 0) | load average at its end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for bad in r.get("bad", ()):
            share = "met" if bad["share"] <= GOAL_BAD_SHARE else "missed"
            over = bad["over_goal"] + bad["not_back"]
            lines.append(
                f"| {r['devices']} | {bad['case']} | {bad['halt_s']:.1f} | {bad['ran']} "
                f"({bad['share']:.2%}, {share}) | {bad['counted']} "
                f"| {fleet.fmt(bad['back_median_s'], 2)} / {fleet.fmt(bad['back_max_s'], 2)} "
                f"| {over} ({'met' if over == 0 else 'missed'}) "
                f"| {', '.join(f'{x:.1f}' for x in bad['load'])} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1000", help="fleet sizes, comma separated")
    parser.add_argument("--processes", type=int, default=1, help="simulator processes")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before a phase")
    parser.add_argument("--drain", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per wait")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument(
        "--good-only", action="store_true", help="the fan-out and the good rollout, no bad ones"
    )
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

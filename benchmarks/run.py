"""Run the benchmark suite (``make bench``): every benchmark in turn, as benchmarks/README.md
gives it, each recording its results in ``benchmarks/results/`` the way it does on its own.

    .venv/bin/python benchmarks/run.py [--list] [--only NAME ...] [--dry-run]

Runs one at a time (they measure CPU on shared cores; two at once spoil each other) and ends
with a table of what ran, how long it took and whether it succeeded; the exit status is 1 when
any failed.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...] = ()
    what: str = ""

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / self.script), *self.args]


SUITE = (
    Benchmark("mqtt", "mqtt_publish_bench.py", (), "flotta.mqtt publish rate / bare paho"),
    Benchmark(
        "broker-tls", "broker_tls_bench.py", (), "broker CPU per device connect, two TLS setups"
    ),
    Benchmark(
        "kubeapi",
        "kubeapi_bench.py",
        ("--out", str(HERE / "results" / "kubeapi.md")),
        "local Kubernetes API at 10,000 EdgeDevices",
    ),
    Benchmark("operator", "operator_fanout_bench.py", (), "operator fan-out to 10,000 devices"),
    Benchmark("bridge", "bridge_bench.py", (), "bridge ingest, writes and latency"),
    Benchmark("agent", "agent_footprint_bench.py", ("--write",), "agent memory and CPU"),
    Benchmark(
        "exporter",
        "exporter_bench.py",
        ("--out", str(HERE / "results" / "exporter.md")),
        "exporter throughput / bare JetStream-to-remote-write loop, latency to queryable",
    ),
    Benchmark(
        "simulator",
        "simulator_bench.py",
        ("--devices", "10000", "--storm"),
        "the device tier alone (floor for the fleet)",
    ),
    Benchmark(
        "rollout",
        "rollout_bench.py",
        ("--devices", "10000", "--processes", "2"),
        "batched rollouts at 10,000 devices: good / plain fan-out, share of a bad revision",
    ),
    Benchmark(
        "fleet",
        "fleet_bench.py",
        ("--devices", "10000", "--fanout", "--storm", "--settle", "5"),
        "the whole system with 10,000 simulated devices",
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these only")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    known = {bench.name: bench for bench in SUITE}
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [bench for bench in SUITE if not args.only or bench.name in args.only]
    if args.list:
        for bench in chosen:
            print(f"{bench.name:12} {bench.what}\n{'':12} {shlex.join(bench.command())}")
        return 0
    outcomes: list[tuple[str, int, float]] = []
    for index, bench in enumerate(chosen, 1):
        command = bench.command()
        print(f"\n=== [{index}/{len(chosen)}] {bench.name}: {shlex.join(command)}", flush=True)
        if args.dry_run:
            continue
        started = time.monotonic()
        code = subprocess.run(command, cwd=ROOT, check=False).returncode
        outcomes.append((bench.name, code, time.monotonic() - started))
    if outcomes:
        print("\n| benchmark | result | minutes |\n|---|---|---|")
        for name, code, seconds in outcomes:
            print(f"| {name} | {'ok' if code == 0 else f'failed ({code})'} | {seconds / 60:.1f} |")
    return 1 if any(code != 0 for _, code, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())

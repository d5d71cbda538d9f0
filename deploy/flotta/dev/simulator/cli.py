"""``flotta dev simulate``: simulated devices with real TLS MQTT connections.

With ``--processes N`` the fleet is split over N child processes (``--shard``), one asyncio
loop each, so a large fleet uses every core. With ``--pki-dir`` the devices get their
certificates straight from the fleet PKI instead of enrolling one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path

from flotta.schemas.topics import ENROLMENT_PORT, FLEET_PORT

CONCURRENT_CONNECTS = 16


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="device keys, certificates and state"
    )
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--prefix", default="sim", help="device ids are PREFIX-00000, ...")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=FLEET_PORT)
    parser.add_argument(
        "--enrolment-port", type=int, default=ENROLMENT_PORT, help="the enrolment broker's"
    )
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--bootstrap-cert", type=Path, help="enrol with this identity")
    parser.add_argument("--bootstrap-key", type=Path)
    parser.add_argument(
        "--pki-dir", type=Path, help="provision device certificates from this fleet PKI"
    )
    parser.add_argument("--namespace", default="default", help="target namespace of enrolment")
    parser.add_argument("--set", dest="device_set", default="", help="target EdgeDeviceSet")
    parser.add_argument(
        "--metrics-interval", type=float, default=30.0, help="seconds; 0: no telemetry"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=60.0, help="seconds, until desired state says"
    )
    parser.add_argument(
        "--connect-spread", type=float, default=5.0, help="start devices over this many seconds"
    )
    parser.add_argument("--processes", type=int, default=1, help="simulator processes")
    parser.add_argument(
        "--concurrent-connects",
        "--connect-threads",  # its name while connects ran in threads
        dest="concurrent_connects",
        type=int,
        default=CONCURRENT_CONNECTS,
        help="connections opened at once (TCP connect + TLS handshake) per process; the other "
        "devices wait their turn",
    )
    parser.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--report",
        type=Path,
        help="keep a JSON summary of the devices here (online, acknowledged versions) for "
        "benchmarks; with --processes N, one file per process: REPORT.0 ... REPORT.N-1",
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="each minute take this fraction of the online devices offline for --offline-for",
    )
    parser.add_argument("--offline-for", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--fail-image",
        default="",
        help="devices fail (and roll back from) every desired state with a container image "
        "containing this; STATE_DIR/faults.json, when present, replaces it (and is followed)",
    )
    parser.add_argument(
        "--fail-share", type=float, default=1.0, help="the fraction of devices that fail"
    )
    parser.add_argument(
        "--fail-mode",
        choices=("exit", "health-check", "timeout", "silent"),
        default="exit",
        help="how they fail: a container exits, a probe fails, the version never becomes "
        "healthy (the health gate's timeout), or the device stops reporting",
    )
    parser.add_argument(
        "--fail-after",
        type=float,
        default=0.0,
        help="seconds from the start of the apply to the exit or the failed probe",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.simulator.shards import ShardError, device_ids, shard_of

    if args.devices < 1 or args.processes < 1 or args.concurrent_connects < 1:
        print(
            "flotta dev simulate: --devices, --processes and --concurrent-connects must be at "
            "least 1"
        )
        return 2
    enrolling = args.bootstrap_cert is not None and args.bootstrap_key is not None
    if args.shard is None and args.pki_dir is None and not enrolling:
        print("flotta dev simulate: give --pki-dir, or --bootstrap-cert and --bootstrap-key")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    ids = device_ids(args.prefix, args.devices)
    if args.shard is None and args.pki_dir is not None:
        _provision(args, ids)
    if args.shard is None and args.processes > 1:
        return _run_children(args.processes)
    try:
        mine = shard_of(ids, args.shard or 0, args.processes)
    except ShardError as exc:
        print(f"flotta dev simulate: {exc}")
        return 2
    asyncio.run(_simulate(args, mine))
    return 0


def _provision(args: argparse.Namespace, ids: list[str]) -> None:
    from flotta.dev.simulator.provision import provision
    from flotta.pki.store import PkiStore

    issued = provision(PkiStore.open(args.pki_dir), args.state_dir, ids, namespace=args.namespace)
    if issued:
        print(f"provisioned {issued} device certificates", flush=True)


def _run_children(count: int) -> int:
    """Re-run this command once per shard; forward SIGTERM/SIGINT and wait for all."""
    argv = _without_option(sys.argv[1:], "--pki-dir")
    children = [
        subprocess.Popen([sys.executable, "-m", "flotta.cli", *argv, "--shard", str(shard)])
        for shard in range(count)
    ]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes)


def _without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (children must not provision)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


async def _simulate(args: argparse.Namespace, ids: list[str]) -> None:
    from flotta import gc_freeze
    from flotta.dev.simulator.limits import fds_needed, raise_open_files
    from flotta.dev.simulator.mqtt_warnings import count_mqtt_warnings
    from flotta.dev.simulator.report import report_path
    from flotta.dev.simulator.simulated_fleet import Churn, Fleet, FleetSettings

    limit = raise_open_files(fds_needed(len(ids)))
    if limit < fds_needed(len(ids)):
        print(f"flotta dev simulate: only {limit} open files allowed for {len(ids)} devices")
    from flotta.dev.simulator.device import FaultRule

    faults: tuple[FaultRule, ...] = ()
    if args.fail_image:
        faults = (
            FaultRule(
                image=args.fail_image,
                share=args.fail_share,
                mode=args.fail_mode,
                after=args.fail_after,
            ),
        )
    settings = FleetSettings(
        host=args.mqtt_host,
        port=args.mqtt_port,
        enrolment_port=args.enrolment_port,
        ca=args.ca,
        bootstrap_cert=args.bootstrap_cert,
        bootstrap_key=args.bootstrap_key,
        state_dir=args.state_dir,
        namespace=args.namespace,
        device_set=args.device_set,
        prefix=args.prefix,
        metrics_interval=args.metrics_interval,
        heartbeat_seconds=args.heartbeat,
        connect_spread=args.connect_spread,
        concurrent_connects=args.concurrent_connects,
        report_path=None if args.report is None else report_path(args.report, args.shard),
        faults=faults,
    )
    churn = Churn(args.churn, offline_seconds=args.offline_for) if args.churn > 0 else None
    warnings = count_mqtt_warnings()  # thousands of reconnect notes: counted, not printed
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Thousands of devices' clients per process: keep them out of the collector's full scans.
    freezer = asyncio.create_task(gc_freeze.keep_frozen())
    # A fan-out allocates a burst of short-lived objects per device; with CPython's default of
    # 700 the collector ran ~50 times a second and took a quarter of the CPU. At 50,000 the
    # simulator's CPU per acknowledged desired state went from 197 to 164 us
    # (benchmarks/results/simulator.md, 2026-12-03 16:04 and 16:07).
    gc_freeze.collect_young_less_often()
    try:
        await Fleet(settings, ids).run(stop, churn=churn, mqtt_warnings=warnings.counts)
    finally:
        freezer.cancel()
        await asyncio.gather(freezer, return_exceptions=True)

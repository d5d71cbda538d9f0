"""``flotta dev simulate``: simulated devices with real TLS MQTT connections."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="device keys and certificates"
    )
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--prefix", default="sim", help="device ids are PREFIX-00000, ...")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=8883)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--bootstrap-cert", type=Path, required=True)
    parser.add_argument("--bootstrap-key", type=Path, required=True)
    parser.add_argument("--namespace", default="default", help="target namespace of enrolment")
    parser.add_argument("--set", dest="device_set", default="", help="target EdgeDeviceSet")
    parser.add_argument("--metrics-interval", type=float, default=30.0, help="seconds")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.simulator.fleet import FleetSettings, run_fleet

    if args.devices < 1:
        print("flotta dev simulate: --devices must be at least 1")
        return 2
    settings = FleetSettings(
        host=args.mqtt_host,
        port=args.mqtt_port,
        ca=args.ca,
        bootstrap_cert=args.bootstrap_cert,
        bootstrap_key=args.bootstrap_key,
        state_dir=args.state_dir,
        namespace=args.namespace,
        device_set=args.device_set,
        prefix=args.prefix,
        metrics_interval=args.metrics_interval,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_fleet(settings, args.devices, stop)

    asyncio.run(main())
    return 0

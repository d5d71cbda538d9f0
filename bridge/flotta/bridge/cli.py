"""``flotta bridge``: run the bridge."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import socket
from pathlib import Path

from flotta.bridge.coalescer import (
    DEFAULT_CHANGE_HOLD,
    DEFAULT_CHANGE_SETTLE,
    DEFAULT_WRITE_BURST,
    DEFAULT_WRITE_RATE,
)
from flotta.bridge.fleet_state import OFFLINE_GRACE
from flotta.bridge.share_group import GROUP_ENV, WELL_KNOWN_GROUP, checked_group, is_guessable
from flotta.schemas.topics import TELEMETRY_KINDS, shared_filter


def register(parser: argparse.ArgumentParser) -> None:
    mqtt = parser.add_argument_group("MQTT")
    mqtt.add_argument("--mqtt-host", default="127.0.0.1")
    mqtt.add_argument("--mqtt-port", type=int, default=8883)
    mqtt.add_argument("--ca", type=Path, required=True, help="fleet CA certificate (PEM)")
    mqtt.add_argument(
        "--cert", type=Path, required=True, help="bridge certificate, CN internal:bridge"
    )
    mqtt.add_argument("--key", type=Path, required=True, help="bridge private key")
    mqtt.add_argument(
        "--client-id",
        default=os.environ.get("POD_NAME") or f"flotta-bridge-{socket.gethostname()}",
        help="stable per replica, so its persistent session survives restarts",
    )
    mqtt.add_argument(
        "--group",
        default=os.environ.get(GROUP_ENV, WELL_KNOWN_GROUP),
        type=checked_group,
        help=f"shared subscription group; keep it secret: set {GROUP_ENV} instead",
    )
    mqtt.add_argument("--receive-maximum", type=int, default=1000)
    mqtt.add_argument("--session-expiry", type=int, default=24 * 3600, help="seconds")
    parser.add_argument(
        "--nats-url",
        default="nats://127.0.0.1:4222",
        help="tls://HOST:PORT: authenticate with a client certificate (--nats-cert)",
    )
    parser.add_argument("--nats-ca", type=Path, help="default: --ca")
    parser.add_argument("--nats-cert", type=Path, help="default: --cert (CN internal:bridge)")
    parser.add_argument("--nats-key", type=Path, help="default: --key")
    parser.add_argument(
        "--lease-namespace",
        default="flotta",
        help="renew this replica's presence lease here (the operator's lease namespace); "
        "'' for none",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None,
        help="default: $KUBECONFIG, else the in-cluster service account",
    )
    writes = parser.add_argument_group("Kubernetes writes")
    writes.add_argument(
        "--write-rate", type=float, default=DEFAULT_WRITE_RATE, help="status writes a second"
    )
    writes.add_argument("--write-burst", type=float, default=DEFAULT_WRITE_BURST)
    writes.add_argument(
        "--refresh-rate", type=float, default=5.0, help="last-seen refreshes a second"
    )
    writes.add_argument("--refresh-periods", type=float, default=6.0, help="heartbeat periods")
    writes.add_argument(
        "--change-settle",
        type=float,
        default=DEFAULT_CHANGE_SETTLE,
        help="seconds without a new ordinary status change before they are written (urgent "
        "ones never wait)",
    )
    writes.add_argument(
        "--change-hold", type=float, default=DEFAULT_CHANGE_HOLD, help="but at most this long"
    )
    writes.add_argument("--write-workers", type=int, default=4)
    parser.add_argument(
        "--missed-periods",
        type=float,
        default=3.0,
        help="heartbeat periods without a heartbeat before a device is offline",
    )
    parser.add_argument(
        "--offline-grace",
        type=float,
        default=OFFLINE_GRACE,
        help="seconds after a device's will before it is offline, unless it reconnects (at "
        "most its missed-heartbeat window; 0: at once)",
    )
    parser.add_argument("--health-host", default="127.0.0.1")
    parser.add_argument("--health-port", type=int, default=8081, help="-1: no health server")
    parser.add_argument("--log-format", choices=("text", "json"), default="json")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta import gc_freeze
    from flotta.bridge.app import BridgeSettings, BridgeTaskError, WriteSettings, run
    from flotta.bridge.mqtt_intake import MqttSettings
    from flotta.json_log import use_json_logs
    from flotta.mqtt import TlsFiles

    if args.log_format == "json":
        use_json_logs(args.log_level)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: dump every stack
    # Each report leaves a burst of short-lived objects: collected every 700 allocations (the
    # default) the bridge spent 126-161 us of CPU per message, every 50,000 89-104 us
    # (bridge_bench.py --ingest-only --replicas 2, 2026-12-03 16:30 and 16:32).
    gc_freeze.collect_young_less_often()
    if is_guessable(args.group):
        logging.getLogger("flotta.bridge").warning(
            "the shared-subscription group %r can be guessed: any certificate holder can join "
            "it and make the broker drop a share of every device's messages; set %s to a "
            "secret (flotta dev up and the cluster manifests do)",
            args.group,
            GROUP_ENV,
        )
    settings = BridgeSettings(
        mqtt=MqttSettings(
            host=args.mqtt_host,
            port=args.mqtt_port,
            ca=args.ca,
            cert=args.cert,
            key=args.key,
            client_id=args.client_id,
            filters=tuple(shared_filter(args.group, kind) for kind in TELEMETRY_KINDS),
            receive_maximum=args.receive_maximum,
            session_expiry=args.session_expiry,
        ),
        nats_url=args.nats_url,
        kubeconfig=args.kubeconfig,
        writes=WriteSettings(
            rate=args.write_rate,
            burst=args.write_burst,
            refresh_rate=args.refresh_rate,
            refresh_periods=args.refresh_periods,
            change_settle=args.change_settle,
            change_hold=args.change_hold,
            workers=args.write_workers,
        ),
        health_host=args.health_host,
        health_port=None if args.health_port < 0 else args.health_port,
        missed_periods=args.missed_periods,
        offline_grace=args.offline_grace,
        lease_namespace=args.lease_namespace or None,
        nats_tls=TlsFiles(
            args.nats_ca or args.ca, args.nats_cert or args.cert, args.nats_key or args.key
        )
        if args.nats_url.startswith("tls://")
        else None,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(settings, stop)

    try:
        asyncio.run(main())
    except BridgeTaskError as exc:
        logging.getLogger("flotta.bridge").critical("%s; exiting to be restarted", exc)
        return 1
    return 0

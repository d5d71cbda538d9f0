"""``flotta operator run``: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flotta.operator.defaults import DEFAULT_DEVICE_WRITE_RATE, DEFAULT_DEVICE_WRITE_SETTLE
from flotta.schemas.topics import ENROLMENT_PORT, SERVICES_PORT
from flotta.tasks import wait_first

if TYPE_CHECKING:
    from flotta.operator.app import Operator
    from flotta.operator.crl_secret import CrlPublisher

logger = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="operator_command", metavar="COMMAND")
    run = sub.add_parser("run", help="watch the CRDs and publish each device's desired state")
    run.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: in-cluster)")
    run.add_argument("--pki-dir", type=Path, required=True, help="the fleet PKI directory")
    run.add_argument("--broker-host", default="127.0.0.1", help="the fleet broker")
    run.add_argument(
        "--broker-port",
        type=int,
        default=SERVICES_PORT,
        help=f"its services listener, for the control plane (default {SERVICES_PORT})",
    )
    run.add_argument("--enrolment-host", help="the enrolment broker (default: --broker-host)")
    run.add_argument("--enrolment-port", type=int, default=ENROLMENT_PORT)
    run.add_argument(
        "--client-cert", type=Path, help="default: <pki-dir>/clients/internal-operator.crt"
    )
    run.add_argument(
        "--client-key", type=Path, help="default: <pki-dir>/clients/internal-operator.key"
    )
    run.add_argument(
        "--auto-approve",
        action="append",
        default=[],
        metavar="NS[/SET]",
        help="approve enrolment requests targeting this namespace (or set) automatically; "
        "'*' for all; repeatable (default: every request waits for an admin)",
    )
    run.add_argument("--enrolment-namespace", default="flotta")
    run.add_argument("--lease-namespace", default="flotta")
    run.add_argument("--no-leader-election", action="store_true")
    run.add_argument("--health-port", type=int, default=8081)
    run.add_argument("--health-host", default="127.0.0.1")
    crl = run.add_mutually_exclusive_group()
    crl.add_argument(
        "--broker-pid-file",
        type=Path,
        action="append",
        default=[],
        help="send SIGHUP to this broker after a revocation so that it reloads the CRL; "
        "repeatable (the fleet broker and the enrolment broker)",
    )
    crl.add_argument(
        "--crl-secret",
        metavar="NAMESPACE/NAME",
        help="write the CRL into this Secret after a revocation (a broker in the cluster "
        "mounts it); the lease holder also keeps it from expiring",
    )
    run.add_argument(
        "--device-write-rate",
        type=float,
        default=DEFAULT_DEVICE_WRITE_RATE,
        metavar="PER_SECOND",
        help="EdgeDevice writes a second at most (desiredVersion, finalizers, labels); a "
        "fleet-wide change is reflected over N/rate seconds instead of flooding the API server "
        f"(default {DEFAULT_DEVICE_WRITE_RATE:g})",
    )
    run.add_argument(
        "--device-write-settle",
        type=float,
        default=DEFAULT_DEVICE_WRITE_SETTLE,
        metavar="SECONDS",
        help="those writes start this long after the last desired state was published, while "
        f"a rollout's devices answer (default {DEFAULT_DEVICE_WRITE_SETTLE:g})",
    )
    run.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one object a line"
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta import gc_freeze
    from flotta.json_log import use_json_logs
    from flotta.operator.app import Operator, OperatorConfig
    from flotta.operator.broker import BrokerSettings, enrolment_broker
    from flotta.operator.context import OperatorSettings
    from flotta.operator.crl_secret import secret_publisher
    from flotta.operator.errors import OperatorError
    from flotta.operator.policy import ApprovalPolicy
    from flotta.pki.errors import PkiError

    if args.log_format == "json":
        use_json_logs()
    publisher: CrlPublisher | None = None
    try:
        policy = ApprovalPolicy.parse(args.auto_approve)
        if args.crl_secret:
            publisher = secret_publisher(args.pki_dir, args.crl_secret, args.kubeconfig)
    except (OperatorError, PkiError) as exc:
        print(f"flotta operator: {exc}")
        return 2
    clients = args.pki_dir / "clients"
    fleet_broker = BrokerSettings(
        host=args.broker_host,
        port=args.broker_port,
        ca=args.pki_dir / "ca.crt",
        cert=args.client_cert or clients / "internal-operator.crt",
        key=args.client_key or clients / "internal-operator.key",
    )
    cfg = OperatorConfig(
        broker=fleet_broker,
        enrolment=enrolment_broker(
            fleet_broker, host=args.enrolment_host or args.broker_host, port=args.enrolment_port
        ),
        pki_dir=args.pki_dir,
        kubeconfig=args.kubeconfig,
        settings=OperatorSettings(
            enrolment_namespace=args.enrolment_namespace,
            policy=policy,
            device_write_rate=args.device_write_rate,
            device_write_settle=args.device_write_settle,
        ),
        health_host=args.health_host,
        health_port=args.health_port,
        lease_namespace=args.lease_namespace,
        identity=f"{socket.gethostname()}-{os.getpid()}",
        leader_election=not args.no_leader_election,
        reload_crl=publisher.reload if publisher else _sighup(args.broker_pid_file),
    )
    # As in the bridge and the simulator: a fan-out leaves a burst of short-lived objects per
    # device, and the default young threshold (700) ran the collector dozens of times a second.
    gc_freeze.collect_young_less_often()
    return asyncio.run(_serve(Operator(cfg), publisher))


def _sighup(pid_files: list[Path]) -> Callable[[], None]:
    def reload() -> None:
        if not pid_files:
            logger.warning("CRL updated; reload the brokers to apply it (no --broker-pid-file)")
            return
        for pid_file in pid_files:
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)

    return reload


async def _serve(operator: Operator, publisher: CrlPublisher | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await operator.start()  # returns once this replica holds the lease
    fresh = asyncio.ensure_future(publisher.keep_fresh()) if publisher is not None else None
    try:
        waiter, _ = await wait_first(operator.wait(), stop.wait())
        if not waiter.cancelled() and waiter.exception() is not None:
            logger.error("operator stopped: %r", waiter.exception())
            return 1
        return 0
    finally:
        if fresh is not None:
            fresh.cancel()
            await asyncio.gather(fresh, return_exceptions=True)
        await operator.stop()

"""``flotta exporter run``: device telemetry from JetStream into Prometheus remote write
(metrics), Loki and syslog (logs); each sink its own durable consumer.

Every option can also be given in the environment, as ``FLOTTA_EXPORTER_`` and the option's
name in capitals with ``_`` for ``-`` (``--prometheus-url``: ``FLOTTA_EXPORTER_PROMETHEUS_URL``);
a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

ENV_PREFIX = "FLOTTA_EXPORTER_"


def _env(option: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + option.upper().replace("-", "_"), default)


def _env_path(option: str) -> Path | None:
    value = _env(option)
    return Path(value) if value else None


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="exporter_command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run the exporter", description=__doc__)
    nats = run.add_argument_group("NATS")
    nats.add_argument(
        "--nats-url",
        default=_env("nats-url", "nats://127.0.0.1:4222"),
        help="tls://HOST:PORT: authenticate with a client certificate (--nats-cert)",
    )
    nats.add_argument("--nats-ca", type=Path, default=_env_path("nats-ca"), help="CA (PEM)")
    nats.add_argument("--nats-cert", type=Path, default=_env_path("nats-cert"))
    nats.add_argument("--nats-key", type=Path, default=_env_path("nats-key"))
    nats.add_argument(
        "--client-name",
        default=_env("client-name")
        or os.environ.get("POD_NAME")
        or f"flotta-exporter-{socket.gethostname()}",
    )
    prometheus = run.add_argument_group("Prometheus remote write (device metrics)")
    prometheus.add_argument(
        "--prometheus-url",
        default=_env("prometheus-url", ""),
        help="the default receiver, e.g. http://prometheus:9090/api/v1/write (devices whose "
        "metrics.receiverConfiguration names one use theirs); '' and no Kubernetes: metrics "
        "are not exported",
    )
    prometheus.add_argument(
        "--prometheus-ca", type=Path, default=_env_path("prometheus-ca"), help="its CA (PEM)"
    )
    prometheus.add_argument(
        "--request-samples",
        type=int,
        default=int(_env("request-samples", "30000") or 30000),
        help="samples per request to the default receiver",
    )
    prometheus.add_argument(
        "--request-timeout", type=float, default=float(_env("request-timeout", "10") or 10)
    )
    prometheus.add_argument(
        "--device-receivers",
        choices=("auto", "kubernetes", "off"),
        default=_env("device-receivers", "auto"),
        help="read each device's receiver (metrics.receiverConfiguration) and its workloads' "
        "syslog servers (logCollection) from Kubernetes (auto: when a kubeconfig is given or "
        "the exporter runs in a cluster)",
    )
    prometheus.add_argument(
        "--kubeconfig",
        type=Path,
        default=_env_path("kubeconfig")
        or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None),
        help="default: $KUBECONFIG, else the in-cluster service account",
    )
    loki = run.add_argument_group("Loki (device logs)")
    loki.add_argument(
        "--loki-url",
        default=_env("loki-url", ""),
        help="Loki's base URL, e.g. http://loki:3100; '': logs are not sent to Loki",
    )
    loki.add_argument("--loki-tenant", default=_env("loki-tenant", ""), help="X-Scope-OrgID")
    loki.add_argument("--loki-ca", type=Path, default=_env_path("loki-ca"), help="its CA (PEM)")
    syslog = run.add_argument_group("syslog (device logs, RFC 5424)")
    syslog.add_argument(
        "--syslog-address",
        default=_env("syslog-address", ""),
        help="host:port of the syslog server for the lines of workloads whose logCollection "
        "names none; '': those lines go to no syslog server",
    )
    syslog.add_argument(
        "--syslog-protocol",
        choices=("tcp", "tls", "udp"),
        default=_env("syslog-protocol", "tcp"),
    )
    syslog.add_argument(
        "--syslog-ca", type=Path, default=_env_path("syslog-ca"), help="for tls: its CA (PEM)"
    )
    delivery = run.add_argument_group("delivery")
    delivery.add_argument("--fetch-batch", type=int, default=int(_env("fetch-batch", "256") or 256))
    delivery.add_argument(
        "--ack-wait",
        type=float,
        default=float(_env("ack-wait", "30") or 30),
        help="seconds before JetStream hands an unacknowledged message to another replica",
    )
    delivery.add_argument(
        "--max-ack-pending",
        type=int,
        default=int(_env("max-ack-pending", "4096") or 4096),
        help="messages in flight per sink, all replicas together",
    )
    run.add_argument("--health-host", default=_env("health-host", "127.0.0.1"))
    run.add_argument(
        "--health-port",
        type=int,
        default=int(_env("health-port", "8083") or 8083),
        help="-1: no health server",
    )
    run.add_argument("--log-format", choices=("text", "json"), default=_env("log-format", "json"))
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.exporter.app import ExporterSettings, ExporterTaskError, NatsTls
    from flotta.exporter.app import run as run_exporter
    from flotta.exporter.consuming import DeliverySettings
    from flotta.json_log import use_json_logs

    if args.log_format == "json":
        use_json_logs(args.log_level)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    log = logging.getLogger("flotta.exporter")
    nats_tls = None
    if args.nats_url.startswith("tls://"):
        if args.nats_ca is None:
            log.critical("a tls:// NATS URL needs --nats-ca (and --nats-cert, --nats-key)")
            return 2
        nats_tls = NatsTls(args.nats_ca, args.nats_cert, args.nats_key)
    settings = ExporterSettings(
        nats_url=args.nats_url,
        nats_tls=nats_tls,
        client_name=args.client_name,
        delivery=DeliverySettings(fetch_batch=args.fetch_batch),
        health_host=args.health_host,
        health_port=None if args.health_port < 0 else args.health_port,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        routes, closers = _routes(args, log)
        try:
            await run_exporter(settings, routes, stop)
        finally:
            for close in closers:
                close()

    try:
        asyncio.run(main())
    except ExporterTaskError as exc:
        log.critical("%s; exiting to be restarted", exc)
        return 1
    except NoSinkError as exc:
        log.critical("%s", exc)
        return 2
    return 0


def _tuned(route: Any, args: argparse.Namespace) -> Any:
    from dataclasses import replace

    return replace(route, ack_wait=args.ack_wait, max_ack_pending=args.max_ack_pending)


class NoSinkError(RuntimeError):
    """Nothing to export to."""


def _routes(args: argparse.Namespace, log: logging.Logger) -> tuple[list[Any], list[Any]]:
    """The sink routes the options ask for, and what to stop at the end (watch threads)."""
    from flotta.exporter.app import SinkRoute
    from flotta.exporter.receivers import DefaultReceivers, ReceiverDirectory, ReceiverSinks
    from flotta.exporter.routing import Receiver
    from flotta.schemas.wire.telemetry import MetricsBatch

    routes: list[Any] = []
    closers: list[Any] = []
    use_kube = args.device_receivers == "kubernetes" or (
        args.device_receivers == "auto"
        and (args.kubeconfig is not None or os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    default = Receiver(
        url=args.prometheus_url,
        request_num_samples=args.request_samples,
        timeout_seconds=args.request_timeout,
        ca_pem=args.prometheus_ca.read_text() if args.prometheus_ca else None,
        unavailable=None
        if args.prometheus_url
        else "no default receiver (--prometheus-url) and none configured for the device",
    )
    syslog_default = None
    if args.syslog_address:
        from flotta.exporter.syslog_sink import SyslogConfigError, SyslogTarget

        config = {"Address": args.syslog_address, "Protocol": args.syslog_protocol}
        if args.syslog_ca:
            config["CA"] = args.syslog_ca.read_text()
        try:
            syslog_default = SyslogTarget.from_config_map(config)
        except SyslogConfigError as exc:
            raise NoSinkError(f"--syslog-*: {exc}") from None
    kube: Any = None
    ready: Any = lambda: True  # noqa: E731
    if use_kube:
        from flotta.exporter.kube_receivers import KubeReceivers

        kube = KubeReceivers(args.kubeconfig, default=default)
        kube.start()
        closers.append(kube.stop)
        ready = lambda: kube.synced  # noqa: E731
    if args.prometheus_url or use_kube:
        directory: ReceiverDirectory = kube if kube is not None else DefaultReceivers(default)
        sinks = ReceiverSinks(directory)
        route = SinkRoute("prometheus", MetricsBatch, sinks.select, sinks.aclose, ready=ready)
        routes.append(_tuned(route, args))
        log.info(
            "metrics: default receiver %s, per-device receivers %s",
            args.prometheus_url or "(none)",
            "from Kubernetes" if use_kube else "off",
        )
    if args.loki_url:
        from flotta.exporter.app import single
        from flotta.exporter.loki_sink import LokiSettings, LokiSink
        from flotta.schemas.wire.telemetry import LogsBatch

        loki = LokiSink(
            LokiSettings(
                args.loki_url,
                tenant=args.loki_tenant,
                ca_file=str(args.loki_ca) if args.loki_ca else "",
            )
        )
        routes.append(_tuned(single(loki, LogsBatch), args))
        log.info("logs: Loki %s", args.loki_url)
    if args.syslog_address or use_kube:
        from flotta.exporter.syslog_routing import SyslogRoutes
        from flotta.schemas.wire.telemetry import LogsBatch

        syslog = SyslogRoutes(kube, default=syslog_default)
        logs_route = SinkRoute("syslog", LogsBatch, syslog.select, syslog.aclose, ready=ready)
        routes.append(_tuned(logs_route, args))
        log.info(
            "logs: syslog %s, per-device logCollection %s",
            syslog_default.address if syslog_default else "(no default server)",
            "from Kubernetes" if use_kube else "off",
        )
    if not routes:
        raise NoSinkError(
            "no sink configured: give --prometheus-url (or a kubeconfig), --loki-url or "
            "--syslog-address"
        )
    return routes, closers

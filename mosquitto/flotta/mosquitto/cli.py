"""``flotta broker render``: write mosquitto.conf and the ACL for a PKI directory."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from flotta.mosquitto.acl import AclSettings
from flotta.mosquitto.cluster import acl_from_args, add_arguments, write_files
from flotta.mosquitto.config import enrolment_settings
from flotta.mosquitto.files import ENROLMENT_CONFIG_NAME, settings_for_pki, write_broker_files
from flotta.pki.errors import PkiError
from flotta.schemas.topics import ENROLMENT_PORT, FLEET_PORT, SERVICES_PORT


def register(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="broker_command", metavar="COMMAND", required=True)
    render = subparsers.add_parser(
        "render",
        help="write mosquitto.conf, acl and openssl.cnf",
        description="write mosquitto.conf, acl and openssl.cnf (give it in OPENSSL_CONF)",
    )
    render.add_argument("--pki-dir", type=Path, required=True, help="a 'flotta pki init' directory")
    render.add_argument("--out-dir", type=Path, required=True, help="where to write the files")
    render.add_argument("--port", type=int, default=FLEET_PORT, help="devices and observers")
    render.add_argument(
        "--services-port", type=int, default=SERVICES_PORT, help="the operator and the bridge"
    )
    render.add_argument(
        "--enrolment-port", type=int, default=ENROLMENT_PORT, help="the enrolment broker"
    )
    render.add_argument("--bind", default="127.0.0.1", help="listener address")
    render.add_argument("--persistence-dir", type=Path, help="default: OUT_DIR/data")
    render.add_argument(
        "--observer", action="append", default=[], metavar="NAME", help="observer:NAME reads"
    )
    render.add_argument(
        "--bootstrap-batch", action="append", default=[], metavar="BATCH", help="known batches"
    )
    render.add_argument("--run-as-root", action="store_true", help="add 'user root' (tests)")
    render.set_defaults(handler=_render)
    cluster = subparsers.add_parser(
        "render-cluster",
        help="write mosquitto.conf and acl for the broker StatefulSet in a cluster",
        description="write mosquitto.conf and acl for the broker StatefulSet in a cluster "
        "(paths as deploy/kubernetes/broker.yaml mounts them)",
    )
    cluster.add_argument("--out-dir", type=Path, required=True, help="where to write the files")
    add_arguments(cluster)
    cluster.set_defaults(handler=_render_cluster)


def _render(args: argparse.Namespace) -> int:
    pki_dir: Path = args.pki_dir
    if not (pki_dir / "ca.crt").is_file():
        print(f"flotta broker: {pki_dir} is not a PKI directory (no ca.crt)", file=sys.stderr)
        return 2
    for port in (args.port, args.services_port, args.enrolment_port):
        if not 0 < port < 65536:
            print(f"flotta broker: port {port} is out of range", file=sys.stderr)
            return 2
    try:
        acl = AclSettings()
        for name in args.observer:
            acl = acl.with_observer(name)
        for batch in args.bootstrap_batch:
            acl = acl.with_bootstrap_batch(batch)
        settings = settings_for_pki(
            pki_dir,
            args.out_dir,
            port=args.port,
            services_port=args.services_port,
            bind_address=args.bind,
            persistence_dir=args.persistence_dir,
            run_as_root=args.run_as_root,
        )
        files = write_broker_files(settings, acl, args.out_dir / "mosquitto.conf")
        enrolment = write_broker_files(
            enrolment_settings(settings, port=args.enrolment_port),
            acl,
            args.out_dir / ENROLMENT_CONFIG_NAME,
        )
    except (PkiError, OSError) as exc:
        print(f"flotta broker: {exc}", file=sys.stderr)
        return 2
    for path in (files.config_path, files.acl_path, enrolment.config_path, enrolment.acl_path):
        print(path)
    print(files.openssl_config_path)
    print(
        "start two brokers, each with "
        f"OPENSSL_CONF={files.openssl_config_path.resolve()} (no TLS session tickets): "
        f"mosquitto -c {files.config_path} and mosquitto -c {enrolment.config_path}",
        file=sys.stderr,
    )
    return 0


def _render_cluster(args: argparse.Namespace) -> int:
    try:
        paths = write_files(args.out_dir, acl_from_args(args))
    except (PkiError, OSError) as exc:
        print(f"flotta broker: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``flotta broker`` without the ``flotta`` dispatcher."""
    parser = argparse.ArgumentParser(prog="flotta broker", description=__doc__)
    register(parser)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)

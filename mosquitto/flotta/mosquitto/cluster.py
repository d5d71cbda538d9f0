"""The broker's files for a Kubernetes cluster (``deploy/kubernetes/broker/``).

The paths are where the broker StatefulSet (``deploy/kubernetes/broker.yaml``) mounts things:

    /etc/mosquitto/flotta/  mosquitto.conf, acl, enrolment.conf, enrolment-acl, openssl.cnf
                            ConfigMap made by kustomize from these files (OPENSSL_CONF names
                            the last); the enrolment broker is a second container
    /etc/mosquitto/tls/     ca.crt server.crt server.key  Secret flotta-broker-tls
    /etc/mosquitto/crl/     crl.pem                   Secret flotta-crl, written by the operator
    /mosquitto/data/        the persistent store      the StatefulSet's volume claim
    /mosquitto/data-enrolment/  the enrolment broker's store (pending answers; an emptyDir)

Mosquitto runs as its own non-root user there, so the configuration has no ``user`` line.
Regenerate the committed files with ``python -m flotta.mosquitto.cluster deploy/kubernetes/broker``
(a test fails when they are stale); with observers or listed bootstrap batches, write them
into an overlay of your own: ``flotta broker render-cluster --out-dir DIR --observer NAME``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from flotta.mosquitto.acl import AclSettings, render_acl, render_enrolment_acl
from flotta.mosquitto.config import BrokerSettings, enrolment_settings, render_config
from flotta.mosquitto.files import ENROLMENT_CONFIG_NAME
from flotta.mosquitto.openssl import OPENSSL_CONFIG_NAME, render_openssl_config
from flotta.pki.files import write_atomic
from flotta.schemas.topics import FLEET_PORT, SERVICES_PORT

CONFIG_DIR = Path("/etc/mosquitto/flotta")
TLS_DIR = Path("/etc/mosquitto/tls")
CRL_DIR = Path("/etc/mosquitto/crl")
DATA_DIR = Path("/mosquitto/data")
CONFIG_FILE = CONFIG_DIR / "mosquitto.conf"


def cluster_settings() -> BrokerSettings:
    """Broker settings for the paths the StatefulSet mounts."""
    return BrokerSettings(
        cafile=TLS_DIR / "ca.crt",
        certfile=TLS_DIR / "server.crt",
        keyfile=TLS_DIR / "server.key",
        crlfile=CRL_DIR / "crl.pem",
        acl_file=CONFIG_DIR / "acl",
        persistence_dir=DATA_DIR,
        port=FLEET_PORT,
        services_port=SERVICES_PORT,
    )


def cluster_files(acl: AclSettings | None = None) -> dict[str, str]:
    """File name -> content of the broker's ConfigMap."""
    fleet = cluster_settings()
    return {
        "mosquitto.conf": render_config(fleet),
        "acl": render_acl(acl if acl is not None else AclSettings()),
        ENROLMENT_CONFIG_NAME: render_config(enrolment_settings(fleet)),
        "enrolment-acl": render_enrolment_acl(),
        OPENSSL_CONFIG_NAME: render_openssl_config(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--observer", action="append", default=[], metavar="NAME", help="observer:NAME reads"
    )
    parser.add_argument(
        "--bootstrap-batch", action="append", default=[], metavar="BATCH", help="known batches"
    )


def acl_from_args(args: argparse.Namespace) -> AclSettings:
    """The ACL settings of ``--observer`` and ``--bootstrap-batch`` (IdentityError if bad)."""
    acl = AclSettings()
    for name in args.observer:
        acl = acl.with_observer(name)
    for batch in args.bootstrap_batch:
        acl = acl.with_bootstrap_batch(batch)
    return acl


def write_files(out_dir: Path, acl: AclSettings | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in cluster_files(acl).items():
        write_atomic(out_dir / name, text.encode())
        written.append(out_dir / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flotta.mosquitto.cluster", description="write the cluster broker files"
    )
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path("deploy/kubernetes/broker"))
    add_arguments(parser)
    args = parser.parse_args(argv)
    for path in write_files(args.out_dir, acl_from_args(args)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

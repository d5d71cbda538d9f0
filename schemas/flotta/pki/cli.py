"""``flotta pki ...``: the fleet CA for administrators.

Every failure is one line on stderr and exit code 2; nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flotta.pki.authority import CLIENT_VALIDITY, DEVICE_VALIDITY, SERVER_VALIDITY
from flotta.pki.cert_info import common_name
from flotta.pki.errors import PkiError
from flotta.pki.identities import Identity, Role, bootstrap_identity, parse_identity
from flotta.pki.keys import certificate_to_pem, load_certificate
from flotta.pki.revocation import parse_serial
from flotta.pki.store import PkiStore
from flotta.schemas.errors import ContractError

Handler = Callable[[argparse.Namespace], int]


def _days(text: str) -> timedelta:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if days <= 0:
        raise argparse.ArgumentTypeError("the validity must be positive")
    return timedelta(days=days)


def register(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, required=True, help="the PKI directory")
    sub = parser.add_subparsers(dest="pki_command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    init = add("init", "create the fleet CA and an empty CRL")
    init.add_argument("--name", default="Flotta fleet CA", help="the CA's common name")
    init.add_argument("--days", type=_days, default=timedelta(days=3650), help="CA validity")
    init.set_defaults(handler=_guard(_init))

    server = add("issue-server", "issue the broker's TLS certificate")
    server.add_argument("--hostname", action="append", default=[], help="DNS name (repeat)")
    server.add_argument("--address", action="append", default=[], help="IP address (repeat)")
    server.add_argument("--days", type=_days, default=SERVER_VALIDITY)
    server.set_defaults(handler=_guard(_issue_server))

    client = add("issue-client", "issue an internal or observer certificate")
    client.add_argument(
        "--identity", required=True, help="internal:operator, internal:bridge or observer:NAME"
    )
    client.add_argument("--out-dir", type=Path, help="default: DIR/clients")
    client.add_argument("--days", type=_days, default=CLIENT_VALIDITY)
    client.set_defaults(handler=_guard(_issue_client))

    boot = add("issue-bootstrap", "issue a bootstrap (register) certificate")
    boot.add_argument("--batch", required=True, help="batch name (DNS-1123 label)")
    boot.add_argument("--out-dir", type=Path, help="default: DIR/clients")
    boot.add_argument("--days", type=_days, default=CLIENT_VALIDITY)
    boot.set_defaults(handler=_guard(_issue_bootstrap))

    sign = add("sign-csr", "sign a device CSR (CN forced to the device id)")
    sign.add_argument("--device-id", required=True)
    sign.add_argument("--namespace", required=True)
    sign.add_argument("--csr", type=Path, required=True, help="PEM CSR file")
    sign.add_argument("--out", type=Path, help="certificate file (default: stdout)")
    sign.add_argument("--days", type=_days, default=DEVICE_VALIDITY)
    sign.set_defaults(handler=_guard(_sign_csr))

    revoke = add("revoke", "revoke a certificate and rewrite the CRL")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="serial number in hex")
    which.add_argument("--cert", type=Path, help="PEM certificate file")
    revoke.set_defaults(handler=_guard(_revoke))

    crl = add("crl", "re-issue the CRL (do it well before it expires)")
    crl.add_argument("--days", type=_days, default=timedelta(days=30))
    crl.set_defaults(handler=_guard(_crl))

    show = add("show", "show the CA, the CRL and issued certificates")
    show.set_defaults(handler=_guard(_show))


def _guard(command: Handler) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (PkiError, ContractError) as exc:
            print(f"flotta pki: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"flotta pki: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
            return 2

    return handler


def _init(args: argparse.Namespace) -> int:
    store = PkiStore.create(args.dir, ca_name=args.name, validity=args.days)
    print(f"created CA {store.ca_cert_path} (key {store.ca_key_path}, CRL {store.crl_path})")
    return 0


def _issue_server(args: argparse.Namespace) -> int:
    store = PkiStore.open(args.dir)
    issued = store.issue_server(
        hostnames=args.hostname or ["localhost"],
        addresses=args.address or ["127.0.0.1", "::1"],
        validity=args.days,
    )
    print(f"{issued.cert_path} {issued.key_path} serial {issued.certificate.serial_number:X}")
    return 0


def _issue_client(args: argparse.Namespace) -> int:
    identity = parse_identity(args.identity)
    if identity.role in (Role.DEVICE, Role.BOOTSTRAP):
        raise PkiError(
            f"{args.identity!r}: devices get certificates through sign-csr, "
            "bootstrap certificates through issue-bootstrap"
        )
    return _issue(args, PkiStore.open(args.dir), identity)


def _issue_bootstrap(args: argparse.Namespace) -> int:
    return _issue(args, PkiStore.open(args.dir), bootstrap_identity(args.batch))


def _issue(args: argparse.Namespace, store: PkiStore, identity: Identity) -> int:
    issued = store.issue_client(identity, validity=args.days, out_dir=args.out_dir)
    print(f"{issued.cert_path} {issued.key_path} serial {issued.certificate.serial_number:X}")
    return 0


def _sign_csr(args: argparse.Namespace) -> int:
    store = PkiStore.open(args.dir)
    csr_path: Path = args.csr
    cert = store.sign_device_csr(
        csr_path.read_bytes(),
        device_id=args.device_id,
        namespace=args.namespace,
        validity=args.days,
    )
    pem = certificate_to_pem(cert)
    if args.out is None:
        sys.stdout.write(pem.decode())
    else:
        out: Path = args.out
        out.write_bytes(pem)
        print(f"{out} serial {cert.serial_number:X}", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    store = PkiStore.open(args.dir)
    if args.serial is not None:
        serial = parse_serial(args.serial)
        if store.find_issued(serial) is None:
            print(
                f"flotta pki: note: serial {serial:X} was not issued from {args.dir}",
                file=sys.stderr,
            )
        note = ""
    else:
        cert = load_certificate(Path(args.cert).read_bytes())
        if cert.issuer != store.authority().certificate.subject:
            raise PkiError(f"{args.cert} was not issued by this CA")
        serial = cert.serial_number
        note = common_name(cert)
    added = store.revoke(serial, note=note)
    store.write_crl()
    state = "revoked" if added else "already revoked"
    print(f"{serial:X} {state}; CRL rewritten: {store.crl_path} (reload the broker: SIGHUP)")
    return 0


def _crl(args: argparse.Namespace) -> int:
    store = PkiStore.open(args.dir)
    crl = store.write_crl(validity=args.days)
    print(f"{store.crl_path}: {len(crl)} revoked, next update {crl.next_update_utc}")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = PkiStore.open(args.dir)
    ca = store.authority().certificate
    print(f"CA        {common_name(ca)}  valid until {ca.not_valid_after_utc.isoformat()}")
    revoked = {e.serial for e in store.revoked()}
    print(f"revoked   {len(revoked)}")
    for cert in store.issued():
        state = "revoked" if cert.serial_number in revoked else "valid"
        print(
            f"{cert.serial_number:X}  {common_name(cert):40}  "
            f"until {cert.not_valid_after_utc.isoformat()}  {state}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flotta.pki.cli``: the same commands without the ``flotta`` dispatcher."""
    parser = argparse.ArgumentParser(prog="flotta pki", description=__doc__)
    register(parser)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

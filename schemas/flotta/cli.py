"""The ``flotta`` command: one entry point, one subcommand per component.

Each component owns a ``cli`` module with ``register(subparsers)``; those modules keep their
heavy imports inside the command functions, so ``flotta agent`` on a device never imports the
Kubernetes or NATS client.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module with register(), one-line help)
COMPONENTS: dict[str, tuple[str, str]] = {
    "pki": (
        "flotta.pki.cli",
        "fleet certificate authority: CA, broker, internal and device certificates",
    ),
    "broker": ("flotta.mosquitto.cli", "render the Mosquitto configuration and ACL"),
    "operator": (
        "flotta.operator.cli",
        "run the operator (CRDs -> retained desired state, enrolment)",
    ),
    "bridge": ("flotta.bridge.cli", "run the bridge (device topics -> CRD status and NATS)"),
    "agent": ("flotta.agent.cli", "run or inspect the device agent"),
    "exporter": (
        "flotta.exporter.cli",
        "run the telemetry exporter (JetStream -> Prometheus remote write, Loki, syslog)",
    ),
    "dev": (
        "flotta.dev.cli",
        "one-machine development stack: local Kubernetes API, simulator, up/down",
    ),
}

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flotta", description="Kubernetes-native fleet manager for edge devices."
    )
    parser.add_argument(
        "--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING, ERROR)"
    )
    add_subcommands(parser, COMPONENTS, dest="component")
    return parser


def add_subcommands(
    parser: argparse.ArgumentParser, commands: dict[str, tuple[str, str]], *, dest: str
) -> None:
    """Add one subcommand per entry; a module that cannot be imported (an extra that is not
    installed) gives a subcommand that says so instead of breaking the whole command."""
    subparsers = parser.add_subparsers(dest=dest, metavar="COMMAND")
    for name, (module_name, help_text) in commands.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            unavailable = subparsers.add_parser(name, help=f"{help_text} [unavailable: {exc}]")
            unavailable.set_defaults(handler=_unavailable(name, exc))
            continue
        command_parser = subparsers.add_parser(name, help=help_text, description=help_text)
        module.register(command_parser)


def _unavailable(name: str, exc: ImportError) -> Handler:
    def handler(_: argparse.Namespace) -> int:
        print(
            f"flotta {name}: not available in this installation ({exc}); "
            "install the extra it needs, e.g. pip install 'flotta[agent]' on a device",
            file=sys.stderr,
        )
        return 2

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

"""``flotta dev ...``: the one-machine development stack."""

from __future__ import annotations

import argparse
import importlib

# subcommand -> module with register(parser)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "kube-api": ("flotta.dev.kubeapi.cli", "serve the local Kubernetes-compatible API"),
}


def register(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="dev_command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.register(subparsers.add_parser(name, help=help_text, description=help_text))

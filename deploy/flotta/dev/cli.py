"""``flotta dev ...``: the one-machine development stack."""

from __future__ import annotations

import argparse

from flotta.cli import add_subcommands

# subcommand -> module with register(parser)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "kube-api": ("flotta.dev.kubeapi.cli", "serve the local Kubernetes-compatible API"),
}


def register(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, SUBCOMMANDS, dest="dev_command")

"""``flotta dev ...``: the one-machine development stack."""

from __future__ import annotations

import argparse

from flotta.cli import add_subcommands

# subcommand -> module with register(parser)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("flotta.dev.stack.cli_up", "run the whole system on this machine (loopback)"),
    "down": ("flotta.dev.stack.cli_down", "stop everything that 'flotta dev up' started"),
    "supervise": ("flotta.dev.stack.cli_supervise", "start again what a detached stack lost"),
    "kube-api": ("flotta.dev.kubeapi.cli", "serve the local Kubernetes-compatible API"),
    "simulate": ("flotta.dev.simulator.cli", "simulated devices with real TLS MQTT connections"),
    "tail": ("flotta.dev.stack.cli_tail", "print device events and telemetry from NATS"),
    "podman": ("flotta.dev.podman_cli", "an isolated Podman API service with a local image"),
    "loki": ("flotta.dev.loki_cli", "the stack's Loki API stand-in (push and LogQL queries)"),
    "images": ("flotta.dev.images.cli", "build the container images from Debian packages"),
}


def register(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, SUBCOMMANDS, dest="dev_command")

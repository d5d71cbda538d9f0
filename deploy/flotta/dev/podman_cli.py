"""``flotta dev podman``: an isolated Podman API service for a simulated device."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="where this Podman keeps everything"
    )
    parser.add_argument(
        "--host-network",
        action="store_true",
        help="run pods in the machine's network namespace (default: a private one)",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="write the configuration and build the image, then exit",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from flotta.dev.podman import (
        BUSYBOX_IMAGE,
        PodmanService,
        PodmanUnavailableError,
        build_busybox_image,
        remove_all_pods,
        unavailable_reason,
        write_config,
    )

    reason = unavailable_reason()
    if reason is not None:
        print(f"flotta dev podman: {reason}", file=sys.stderr)
        return 1
    environment = write_config(args.state_dir)
    try:
        started = time.monotonic()
        built = build_busybox_image(environment)
        took = time.monotonic() - started
        print(f"image {BUSYBOX_IMAGE}: {'built' if built else 'present'} ({took:.2f} s)")
        for name, value in environment.env.items():
            print(f"export {name}={value}")
        if args.prepare_only:
            return 0
        service = PodmanService(environment, private_network=not args.host_network)
        service.start()
    except PodmanUnavailableError as error:
        print(f"flotta dev podman: {error}", file=sys.stderr)
        return 1
    print(f"serving {environment.socket_url} (pid {service.pid}); Ctrl-C stops", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    try:
        removed = remove_all_pods(environment)
        print(f"removed pods: {', '.join(removed) or 'none'}")
    finally:
        service.stop()
    return 0

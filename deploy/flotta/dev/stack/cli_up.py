"""``flotta dev up``: the whole system on this machine."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from flotta.dev.stack.layout import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from flotta.dev.stack.up import Stack


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: ./.flotta"
    )
    parser.add_argument("--devices", type=int, default=50, help="simulated devices (default 50)")
    parser.add_argument("--detach", action="store_true", help="leave everything running and return")
    parser.add_argument(
        "--no-agent", action="store_true", help="do not start the real agent with Podman"
    )
    parser.add_argument(
        "--no-telemetry",
        action="store_true",
        help="do not start Prometheus, Loki, rsyslogd and the exporter",
    )
    parser.add_argument("--refresh", type=float, default=2.0, help="fleet view refresh, seconds")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.stack.layout import StackLayout
    from flotta.dev.stack.up import Stack, StackError, UpOptions
    from flotta.dev.stack.usage import usage

    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    layout = StackLayout(args.state_dir)
    stack = Stack(
        layout,
        UpOptions(
            devices=args.devices, real_agent=not args.no_agent, telemetry=not args.no_telemetry
        ),
    )
    interrupted = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # A shell starts background jobs with SIGINT ignored; `kill -INT` must still stop the stack.
    signal.signal(signal.SIGINT, on_signal)
    try:
        ports = stack.up()
    except (StackError, KeyboardInterrupt) as exc:
        stopped = stack.stop_all()
        print(f"flotta dev up: {exc or 'interrupted'}; stopped {', '.join(stopped) or 'nothing'}")
        return 1 if not interrupted else 130
    print(usage(layout, ports, telemetry=stack.telemetry_started, syslog=stack.syslog_started))
    if args.detach:
        stack.start_supervisor()
        print(
            "running in the background (processes that end are started again); "
            f"stop with: flotta dev down --state-dir {layout.root}"
        )
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        _watch(stack, args.refresh)
    stopped = stack.stop_all()
    print(f"\nstopped {', '.join(stopped)}; state kept in {layout.root}")
    return 0


def _watch(stack: Stack, refresh: float) -> None:
    from flotta.dev.stack.live import FleetWatcher
    from flotta.dev.stack.supervision import Supervisor

    watcher = FleetWatcher(stack)
    supervisor = Supervisor(stack.layout)
    while True:
        supervisor.tick()
        print("\033[2J\033[H" + watcher.render(), flush=True)
        time.sleep(refresh)

"""``flotta dev down``: stop every process that ``flotta dev up`` started (by PID)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flotta.dev.stack.layout import DEFAULT_STATE_DIR


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: ./.flotta"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.stack import processes
    from flotta.dev.stack.layout import StackLayout

    layout = StackLayout(args.state_dir)
    stopped = [f"{r.name} ({r.pid})" for r in processes.stop_recorded(layout.processes)]
    print(f"stopped {', '.join(stopped)}" if stopped else f"nothing running in {layout.root}")
    return 0

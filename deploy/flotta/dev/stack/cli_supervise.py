"""``flotta dev supervise``: keep a detached stack's processes running (``up --detach``
starts it; ``flotta dev down`` stops it first)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from flotta.dev.stack.layout import DEFAULT_STATE_DIR


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: ./.flotta"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.stack.layout import StackLayout
    from flotta.dev.stack.supervision import Supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Supervisor(StackLayout(args.state_dir)).run(interval=args.interval)
    return 0

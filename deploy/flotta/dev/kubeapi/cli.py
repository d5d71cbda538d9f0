"""``flotta dev kube-api --state-dir DIR [--port N]``: serve the local Kubernetes API."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="SQLite state, TLS files and kubeconfig"
    )
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    parser.add_argument(
        "--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks"
    )
    parser.add_argument(
        "--watch-history", type=int, default=10_000, help="events kept per resource for watches"
    )
    parser.add_argument(
        "--audit-log-path",
        type=Path,
        help="write an audit.k8s.io Event (Metadata level) for every request here, one a line",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.kubeapi.server import ServerConfig, serve

    config = ServerConfig(
        state_dir=args.state_dir,
        port=args.port,
        bookmark_interval=args.bookmark_interval,
        history_size=args.watch_history,
        audit_log=args.audit_log_path,
    )
    asyncio.run(serve(config))
    return 0

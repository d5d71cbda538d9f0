"""``flotta dev loki``: the Loki API stand-in of the local stack (:mod:`flotta.dev.loki`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="where the accepted log entries are kept"
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from flotta.dev.loki import LokiStandIn

    args.state_dir.mkdir(parents=True, exist_ok=True)
    server = LokiStandIn(host=args.host, port=args.port, store=args.state_dir / "entries.jsonl")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.start()
        print(f"Loki API stand-in on {server.url} (push, query_range, query, labels)", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(main())
    return 0

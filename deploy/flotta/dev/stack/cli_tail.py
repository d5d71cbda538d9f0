"""``flotta dev tail``: print what the bridge sends to NATS (CloudEvents), as it arrives."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from flotta.dev.stack.layout import DEFAULT_STATE_DIR


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", nargs="?", default="flotta.>", help="default: flotta.>")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="reads endpoints.json there"
    )
    parser.add_argument("--nats-url", help="default: from endpoints.json")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from nats.aio.msg import Msg

    from flotta.dev.stack.nats_client import observer_connection

    url = args.nats_url
    if url is None:
        endpoints = args.state_dir / "endpoints.json"
        if not endpoints.exists():
            print(f"flotta dev tail: no {endpoints}; is the stack up? (or pass --nats-url)")
            return 2
        url = json.loads(endpoints.read_text())["nats"]

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        seen = 0
        # The stack's NATS admits the observer certificate it issued (read-only).
        connection = await observer_connection(args.state_dir, url)

        async def show(message: Msg) -> None:
            nonlocal seen
            seen += 1
            print(f"{message.subject} {message.data.decode(errors='replace')}", flush=True)
            if args.count and seen >= args.count:
                stop.set()

        await connection.subscribe(args.subject, cb=show)
        await stop.wait()
        await connection.drain()

    asyncio.run(main())
    return 0

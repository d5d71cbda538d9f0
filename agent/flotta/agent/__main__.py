"""``python -m flotta.agent run|status|enrol``: the agent without the other components' CLIs."""

from __future__ import annotations

import argparse
import logging
import sys

from flotta.agent.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flotta-agent", description="Flotta device agent.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    register(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

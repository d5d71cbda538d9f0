"""``flotta agent run|status|enrol``: the daemon and what the person next to the device needs.

Heavy imports (the daemon, the runtime) happen inside the commands, so ``flotta agent status``
stays quick on a small board.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flotta.agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from flotta.agent.errors import AgentError


def register(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="agent_command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the agent daemon")
    _common(run)
    run.set_defaults(handler=_run)
    status = commands.add_parser("status", help="identity, connection, workloads, telemetry")
    _common(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)
    enrol = commands.add_parser("enrol", help="enrol now (if not enrolled) and exit")
    _common(enrol)
    enrol.set_defaults(handler=_enrol)
    parser.set_defaults(handler=lambda _: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"TOML configuration file (default {DEFAULT_CONFIG_PATH}; a missing default is fine)",
    )
    parser.add_argument("--state-dir", type=Path, help="override state_dir")
    parser.add_argument("--broker-url", help="override broker_url (mqtts://host:port)")
    parser.add_argument("--enrolment-url", help="override enrolment_url (mqtts://host:port)")
    parser.add_argument("--device-id", help="override device_id")
    parser.add_argument("--podman-socket", help="override podman_socket (unix://...)")


def _config(args: argparse.Namespace) -> AgentConfig:
    return load_config(
        args.config,
        {
            "state_dir": args.state_dir,
            "broker_url": args.broker_url,
            "enrolment_url": args.enrolment_url,
            "device_id": args.device_id,
            "podman_socket": args.podman_socket,
        },
    )


def _run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        if not _enrolled(config):
            # Enrol in a child process: the daemon then never loads what only enrolment
            # needs (cryptography: about 12 MiB resident on a small board).
            code = subprocess.call([sys.executable, "-m", "flotta.agent", *_enrol_argv(args)])
            if code != 0:
                return code
        return asyncio.run(_run_agent(config))
    except AgentError as exc:
        print(f"flotta agent: {exc}", file=sys.stderr)
        return 1


def _enrolled(config: AgentConfig) -> bool:
    from flotta.agent.identity import IdentityStore

    status = IdentityStore(config.identity_dir, config.resolved_device_id()).status()
    return status is not None and status.not_after > datetime.now(UTC)


def _enrol_argv(args: argparse.Namespace) -> list[str]:
    argv = ["enrol", "--config", str(args.config)]
    for option in ("state_dir", "broker_url", "enrolment_url", "device_id", "podman_socket"):
        value = getattr(args, option)
        if value is not None:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    return argv


async def _run_agent(config: AgentConfig) -> int:
    from flotta.agent.daemon import Agent

    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop)
    return await agent.run()


def _enrol(args: argparse.Namespace) -> int:
    from flotta.agent import hardware
    from flotta.agent.enrolment import enrol
    from flotta.agent.identity import IdentityStore

    try:
        config = _config(args)
        identity = IdentityStore(config.identity_dir, config.resolved_device_id())
        if _enrolled(config):
            print(f"already enrolled as {identity.device_id}")
            return 0
        status = asyncio.run(enrol(config, identity, hardware.collect()))
    except AgentError as exc:
        print(f"flotta agent: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled as {status.common_name}; certificate valid until {status.not_after}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from flotta.agent.identity import IdentityStore
    from flotta.agent.status_file import read_status

    try:
        config = _config(args)
        device_id = config.resolved_device_id()
        certificate = IdentityStore(config.identity_dir, device_id).status()
    except AgentError as exc:
        print(f"flotta agent: {exc}", file=sys.stderr)
        return 1
    status = read_status(config.state_dir)
    document: dict[str, Any] = {
        "device_id": device_id,
        "state_dir": str(config.state_dir),
        "certificate_not_after": certificate.not_after.isoformat() if certificate else None,
        "daemon": asdict(status) if status is not None else None,
    }
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(render_status(document, now=datetime.now(UTC)))
    return 0 if status is not None else 3


def render_status(document: dict[str, Any], *, now: datetime) -> str:
    lines = [f"device      {document['device_id']}"]
    not_after = document["certificate_not_after"]
    if not_after is None:
        lines.append("certificate none (not enrolled)")
    else:
        left = datetime.fromisoformat(not_after) - now
        lines.append(f"certificate valid until {not_after} ({left.days} days left)")
    daemon = document["daemon"]
    if daemon is None:
        lines.append(f"daemon      no status in {document['state_dir']} (not running yet?)")
        return "\n".join(lines)
    connection = "connected" if daemon["connected"] else "disconnected"
    if daemon["last_error"]:
        connection += f" ({daemon['last_error']})"
    lines += [
        f"daemon      {daemon['phase']} (pid {daemon['pid']}, updated {daemon['updated']})",
        f"broker      {daemon['broker']}: {connection}",
        f"last online {daemon['last_connected'] or 'never'}",
        f"applied     {daemon['applied_version'] or '-'}",
        f"desired     {daemon['desired_version'] or '-'}",
        *_rollout_lines(daemon),
        f"telemetry   {daemon['telemetry_buffered']} buffered, "
        f"{daemon['telemetry_dropped']} dropped, "
        f"{daemon.get('telemetry_unconfirmed', 0)} batches awaiting receipts, "
        f"{daemon.get('telemetry_resent', 0)} resent",
        f"events      {daemon['events_pending']} pending "
        f"({daemon.get('events_unconfirmed', 0)} awaiting receipts), "
        f"{daemon['events_dropped']} dropped, {daemon.get('events_resent', 0)} resent"
        + (
            f", {daemon['events_not_saved']} not saved to disk"
            if daemon.get("events_not_saved")
            else ""
        ),
        f"workloads   {len(daemon['workloads'])}",
    ]
    for workload in daemon["workloads"]:
        message = f"  {workload['message']}" if workload["message"] else ""
        lines.append(f"  {workload['name']:<30} {workload['phase']}{message}")
    return "\n".join(lines)


def _rollout_lines(daemon: dict[str, Any]) -> list[str]:
    """The version being applied, waiting for its window, or failed (when any)."""
    lines = []
    if daemon.get("applying_version"):
        lines.append(f"applying    {daemon['applying_version']}")
    if daemon.get("waiting_version"):
        lines.append(f"waiting     {daemon['waiting_version']} (for the update window)")
    if daemon.get("failed_version"):
        back = ", rolled back" if daemon.get("rolled_back") else ", rolling back"
        lines.append(f"failed      {daemon['failed_version']} ({daemon['failed_reason']}{back})")
    return lines

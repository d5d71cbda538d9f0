"""The local stack's syslog server: Debian's rsyslogd in the foreground, RFC 5424 over TCP
(octet counting, as the exporter's syslog sink sends it) on a loopback port, every message
written to one file as RFC 5424 text. The sample device set's ``logCollection`` entry
``syslog`` names the ConfigMap ``syslog-server``, which the stack points at this server, so
the sample workload's lines reach it through the exporter as they would reach a site's
syslog server."""

from __future__ import annotations

import shutil
from pathlib import Path

CONFIG_MAP = "syslog-server"  # deploy/samples/edgedeviceset.yaml: logCollection.syslog
MESSAGES = "messages.log"


def find_rsyslogd() -> str | None:
    return shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if Path(p).exists()), None
    )


def rsyslog_config(workdir: Path, *, host: str, port: int) -> str:
    messages = workdir / MESSAGES
    return "\n".join(
        [
            "# Written by flotta dev up: syslog over TCP on loopback, every message to one file.",
            f'global(workDirectory="{workdir}" maxMessageSize="64k")',
            'module(load="imtcp")',
            f'input(type="imtcp" address="{host}" port="{port}" ruleset="devices")',
            'ruleset(name="devices") {',
            f'  action(type="omfile" file="{messages}" template="RSYSLOG_SyslogProtocol23Format")',
            "}",
            f'*.* action(type="omfile" file="{workdir / "rsyslogd-internal.log"}")',
            "",
        ]
    )


def rsyslog_argv(binary: str, workdir: Path) -> list[str]:
    return [binary, "-n", "-f", str(workdir / "rsyslog.conf"), "-i", str(workdir / "rsyslogd.pid")]


def config_map_data(*, host: str, port: int) -> dict[str, str]:
    """The ConfigMap upstream Flotta's ``syslogConfig`` names: ``Address`` and ``Protocol``."""
    return {"Address": f"{host}:{port}", "Protocol": "tcp"}

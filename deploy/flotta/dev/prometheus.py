"""Prometheus for the local stack: Debian's ``prometheus`` as the remote-write receiver of
device metrics, and the scraper of the control plane's own ``/metrics``.

- ``--web.enable-remote-write-receiver`` takes the exporter's writes at ``/api/v1/write``.
- ``storage.tsdb.out_of_order_time_window`` (a setting of the configuration file since
  Prometheus 2.39; Debian 12 ships 2.42): samples keep their device timestamps, and those a
  device buffered while offline arrive late, after newer ones of the same series. Prometheus
  accepts them as long as they are within this window of the series' newest sample, and
  refuses older ones as out of bounds (the exporter counts those). The stack's window is a
  week, as long as the agent's default buffer retention (``retention.maxHours``: 168), so
  whatever a device kept while offline is taken.
- Retention of the TSDB: 15 days (Prometheus' default).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

OUT_OF_ORDER_WINDOW = "7d"
SCRAPE_INTERVAL = "15s"


class PrometheusUnavailableError(RuntimeError):
    """The ``prometheus`` binary is not installed."""


def find_prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        raise PrometheusUnavailableError(
            "prometheus is not installed (deploy/local/install-system-packages.sh installs it)"
        )
    return binary


def config_text(
    scrape_targets: Mapping[str, str], *, out_of_order_window: str = OUT_OF_ORDER_WINDOW
) -> str:
    """``prometheus.yml``: the out-of-order window, and one scrape job per ``job: host:port``
    (the ``/metrics`` of the stack's own processes)."""
    lines = [
        "# Written by flotta dev up.",
        "global:",
        f"  scrape_interval: {SCRAPE_INTERVAL}",
        "storage:",
        "  tsdb:",
        f"    out_of_order_time_window: {out_of_order_window}",
    ]
    if scrape_targets:
        lines.append("scrape_configs:")
        for job, address in sorted(scrape_targets.items()):
            lines += [
                f"  - job_name: {job}",
                "    static_configs:",
                f"      - targets: ['{address}']",
            ]
    return "\n".join(lines) + "\n"


def prometheus_argv(binary: str, workdir: Path, *, host: str, port: int) -> list[str]:
    """The command line for a Prometheus whose configuration is ``workdir/prometheus.yml``."""
    return [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={host}:{port}",
        "--web.enable-remote-write-receiver",
        "--log.level=warn",
    ]

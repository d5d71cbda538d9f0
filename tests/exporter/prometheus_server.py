"""A real Prometheus (Debian's ``prometheus`` package) as a remote-write receiver for tests
and the benchmark: loopback port, its own TSDB directory, an out-of-order window.

``storage.tsdb.out_of_order_time_window`` is a setting of the configuration file (under
``storage: tsdb:``) since Prometheus 2.39; Debian 12 ships 2.42. Readiness is the log line
"Server is ready to receive web requests."; queries go to the HTTP API.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from flotta.child_process import LoggedChild
from flotta.dev.nats_server import free_port

READY_MARK = "Server is ready to receive web requests"


class PrometheusServer(LoggedChild):
    name = "prometheus"

    def __init__(self, workdir: Path, *, out_of_order_window: str = "30m") -> None:
        super().__init__(workdir / "prometheus.log")
        self.workdir = workdir
        self.port = free_port()
        self.out_of_order_window = out_of_order_window
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: apt-get install prometheus")
        self.binary = binary

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.base_url}/api/v1/write"

    def start(self, *, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1h\n"
            "storage:\n"
            "  tsdb:\n"
            f"    out_of_order_time_window: {self.out_of_order_window}\n"
        )
        self._spawn(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
                "--log.level=info",
            ]
        )
        failure = self._wait_for_log(lambda text: READY_MARK in text, timeout, "ready")
        if failure:
            log = self.log_text()[-3000:]
            self.stop()
            raise RuntimeError(f"prometheus {failure}:\n{log}")

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def samples(self, selector: str, window: str = "3h") -> dict[str, list[tuple[int, float]]]:
        """Every raw sample of the matching series, ``(timestamp ms, value)`` by the series'
        ``device`` label and name."""
        data = self.api("/api/v1/query", query=f"{selector}[{window}]", time=f"{time.time():.3f}")
        result: dict[str, list[tuple[int, float]]] = {}
        for series in data["result"]:
            metric = series["metric"]
            key = f"{metric.get('device', '')}/{metric['__name__']}"
            result[key] = [(round(float(t) * 1000), float(v)) for t, v in series["values"]]
        return result

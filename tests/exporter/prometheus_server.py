"""A real Prometheus (Debian's ``prometheus`` package) as a remote-write receiver for tests
and the benchmark: the local stack's configuration and command line
(:mod:`flotta.dev.prometheus`) on a loopback port, with its own TSDB directory and an
out-of-order window of the test's choosing. Ready when ``/-/ready`` answers; queries go to
the HTTP API.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from flotta.child_process import LoggedChild
from flotta.dev.nats_server import free_port
from flotta.dev.prometheus import config_text, find_prometheus, prometheus_argv


class PrometheusServer(LoggedChild):
    name = "prometheus"

    def __init__(self, workdir: Path, *, out_of_order_window: str = "30m") -> None:
        super().__init__(workdir / "prometheus.log")
        self.workdir = workdir
        self.port = free_port()
        self.out_of_order_window = out_of_order_window
        self.binary = find_prometheus()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.base_url}/api/v1/write"

    def start(self, *, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(
            config_text({}, out_of_order_window=self.out_of_order_window)
        )
        self._spawn(prometheus_argv(self.binary, self.workdir, host="127.0.0.1", port=self.port))
        failure = self._wait_for_log(lambda _: self._ready(), timeout, "ready")
        if failure:
            log = self.log_text()[-3000:]
            self.stop()
            raise RuntimeError(f"prometheus {failure}:\n{log}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

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

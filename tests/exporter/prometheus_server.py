"""A real Prometheus (Debian's ``prometheus`` package) as a remote-write receiver for tests
and the benchmark: the local stack's configuration and command line
(:mod:`flotta.dev.prometheus`) on a loopback port, with its own TSDB directory and an
out-of-order window of the test's choosing. Ready when ``/-/ready`` answers; queries go to
the HTTP API.
"""

from __future__ import annotations

import json
import ssl
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

    def __init__(
        self,
        workdir: Path,
        *,
        out_of_order_window: str = "30m",
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """``tls``: (certificate, key, CA): serve HTTPS (``--web.config.file``)."""
        super().__init__(workdir / "prometheus.log")
        self.workdir = workdir
        self.tls = tls
        self.port = free_port()
        self.out_of_order_window = out_of_order_window
        self.binary = find_prometheus()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _open(self, url: str, timeout: float) -> Any:
        context = ssl.create_default_context(cafile=str(self.tls[2])) if self.tls else None
        return urllib.request.urlopen(url, timeout=timeout, context=context)  # noqa: S310

    @property
    def write_url(self) -> str:
        return f"{self.base_url}/api/v1/write"

    def start(self, *, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(
            config_text({}, out_of_order_window=self.out_of_order_window)
        )
        argv = prometheus_argv(self.binary, self.workdir, host="127.0.0.1", port=self.port)
        if self.tls:
            cert, key, _ = self.tls
            web = self.workdir / "web.yml"
            web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
            argv.append(f"--web.config.file={web}")
        self._spawn(argv)
        failure = self._wait_for_log(lambda _: self._ready(), timeout, "ready")
        if failure:
            log = self.log_text()[-3000:]
            self.stop()
            raise RuntimeError(f"prometheus {failure}:\n{log}")

    def _ready(self) -> bool:
        try:
            with self._open(f"{self.base_url}/-/ready", 1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        with self._open(url, 10) as response:
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

"""A local Kubernetes API (``flotta dev kube-api``) in a subprocess, with the Flotta CRDs
installed, for the operator's integration tests and benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("schemas", "operator", "bridge", "agent", "mosquitto", "deploy")
START_TIMEOUT = 30.0


def source_path() -> str:
    return os.pathsep.join(str(ROOT / d) for d in SOURCE_DIRS)


class LocalKube:
    def __init__(self, state_dir: Path, *, port: int = 0, watch_history: int = 10_000) -> None:
        self.state_dir = state_dir
        self.port = port
        self.watch_history = watch_history
        self.kubeconfig = state_dir / "kubeconfig"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir.parent / f"{state_dir.name}.log"

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": source_path()}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flotta.cli",
                    "dev",
                    "kube-api",
                    "--state-dir",
                    str(self.state_dir),
                    "--port",
                    str(self.port),
                    "--watch-history",
                    str(self.watch_history),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.kubeconfig.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"local Kubernetes API did not start: {self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 8
        return client.ApiClient(configuration)

    def install_crds(self, api: client.ApiClient) -> None:
        extensions = client.ApiextensionsV1Api(api)
        for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
            extensions.create_custom_resource_definition(yaml.safe_load(path.read_text()))

    def create_namespaces(self, api: client.ApiClient, *names: str) -> None:
        core = client.CoreV1Api(api)
        for name in names:
            core.create_namespace(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )

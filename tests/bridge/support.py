"""Helpers for the bridge's integration tests and benchmark: the local Kubernetes API in a
child process with the Flotta CRDs, EdgeDevice helpers and a small device publisher."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from paho.mqtt.enums import CallbackAPIVersion

from flotta.schemas.crd.common import GROUP, VERSION

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("schemas", "operator", "bridge", "agent", "mosquitto", "deploy")


def source_path() -> str:
    return os.pathsep.join(str(REPO / folder) for folder in SOURCE_DIRS)


class LocalKube:
    """``flotta dev kube-api`` as a child process, stopped by PID."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.kubeconfig = state_dir / "kubeconfig"
        self.log_path = state_dir.parent / "kube-api.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": source_path()}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flotta.cli",
                    "dev",
                    "kube-api",
                    "--state-dir",
                    str(self.state_dir),
                ],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.kubeconfig.exists():
            if self._process.poll() is not None:
                raise RuntimeError(f"kube-api exited: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kube-api not ready: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._process = None

    def api(self) -> k8s.ApiClient:
        made = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        assert isinstance(made, k8s.ApiClient)
        return made

    def install_crds(self, api: k8s.ApiClient) -> None:
        extensions = k8s.ApiextensionsV1Api(api)
        for path in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            extensions.create_custom_resource_definition(
                k8s.V1CustomResourceDefinition.from_dict(document)
            )


def create_namespace(api: k8s.ApiClient, name: str) -> None:
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace.from_dict({"metadata": {"name": name}}))


def create_device(
    api: k8s.ApiClient,
    namespace: str,
    name: str,
    *,
    period: int = 10,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    custom = k8s.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDevice",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"heartbeat": {"periodSeconds": period}},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "edgedevices", body)
    status = status or {"phase": "Enrolled", "desiredVersion": "v1"}
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "edgedevices",
        name,
        {"status": status},
        _content_type="application/merge-patch+json",
    )
    return get_device(api, namespace, name)


def get_device(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    custom = k8s.CustomObjectsApi(api)
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "edgedevices", name)
    assert isinstance(obj, dict)
    return obj


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; its value, or AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")


class Publisher:
    """A device-side MQTT v5 client over TLS with a network thread; publishes wait for PUBACK."""

    def __init__(
        self,
        host: str,
        port: int,
        ca: Path,
        cert: Path,
        key: Path,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self.client.on_connect = lambda *args: self._connected.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("publisher did not connect")

    def publish(self, topic: str, payload: bytes, *, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        if wait:
            info.wait_for_publish(10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Lose the connection without DISCONNECT, so the broker publishes the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

"""Helpers for the bridge's integration tests and benchmark: the local Kubernetes API in a
child process with the Flotta CRDs, EdgeDevice helpers and a small device publisher."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from kubernetes import client as k8s
from paho.mqtt.enums import CallbackAPIVersion

from flotta.schemas.crd.common import GROUP, VERSION


def create_namespace(api: k8s.ApiClient, name: str) -> None:
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))


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
    # What the operator records once it published a desired state: its version and the
    # heartbeat period it tells the device.
    status = status or {
        "phase": "Enrolled",
        "desiredVersion": "v1",
        "desiredHeartbeatPeriodSeconds": period,
    }
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
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # type: ignore[arg-type]  # paho's socket is a real one here
            sock.close()

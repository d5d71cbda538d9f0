"""Fixtures for the bridge's integration tests: the local Kubernetes API with the Flotta
CRDs, and a bridge started against real Mosquitto, nats-server and that API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from flotta.bridge.app import Bridge, BridgeSettings, WriteSettings
from flotta.bridge.mqtt_intake import MqttSettings
from flotta.bridge.streams import StreamSettings
from flotta.dev.nats_server import NatsServer
from flotta.schemas.topics import TELEMETRY_KINDS, shared_filter
from tests.bridge.support import Publisher
from tests.fixtures.brokers import TestBroker
from tests.fixtures.kubeprocess import LocalKube, running_kube

NAMESPACE = "fleet"
SMALL_STREAMS = StreamSettings(
    events_max_bytes=64 * 1024 * 1024,
    telemetry_max_bytes=64 * 1024 * 1024,
    status_max_bytes=64 * 1024 * 1024,
)


@dataclass
class KubeEnv:
    kube: LocalKube
    api: k8s.ApiClient


@pytest.fixture
def local_kube(tmp_path: Path) -> Iterator[KubeEnv]:
    with running_kube(tmp_path / "kube", NAMESPACE) as (kube, api):
        yield KubeEnv(kube, api)


@dataclass
class BridgeEnv:
    broker: TestBroker
    nats: NatsServer
    kube: KubeEnv
    settings: BridgeSettings

    def device(self, device_id: str, will: tuple[str, bytes] | None = None) -> Publisher:
        creds = self.broker.device(device_id, namespace=NAMESPACE)
        return Publisher(
            self.broker.host,
            self.broker.port,
            creds.ca,
            creds.cert,
            creds.key,
            device_id,
            will=will,
        )


@pytest.fixture
def bridge_env(
    mosquitto_broker: TestBroker, nats_server: NatsServer, local_kube: KubeEnv
) -> BridgeEnv:
    creds = mosquitto_broker.bridge()
    settings = BridgeSettings(
        mqtt=MqttSettings(
            host=mosquitto_broker.host,
            port=mosquitto_broker.services_port,
            ca=creds.ca,
            cert=creds.cert,
            key=creds.key,
            client_id="bridge-1",
            filters=tuple(shared_filter("flotta-bridge", kind) for kind in TELEMETRY_KINDS),
            receive_maximum=200,
        ),
        nats_url=nats_server.url,
        kubeconfig=local_kube.kube.kubeconfig,
        streams=SMALL_STREAMS,
        writes=WriteSettings(rate=50, burst=50, refresh_rate=5),
        health_port=0,
    )
    return BridgeEnv(mosquitto_broker, nats_server, local_kube, settings)


StartBridge = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def start_bridge(bridge_env: BridgeEnv) -> AsyncIterator[StartBridge]:
    """Start bridges (closed at teardown); keyword arguments replace settings fields."""
    started: list[Bridge] = []

    async def start(**changes: Any) -> Bridge:
        settings = bridge_env.settings
        if "client_id" in changes:
            settings = replace(
                settings, mqtt=replace(settings.mqtt, client_id=changes.pop("client_id"))
            )
        settings = replace(settings, **changes)
        bridge = Bridge(settings)
        started.append(bridge)
        await bridge.start()
        await asyncio.wait_for(bridge.wait_ready(), 15)
        return bridge

    try:
        yield start
    finally:
        for bridge in reversed(started):
            await bridge.close()

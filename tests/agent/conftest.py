"""Fixtures for agent tests: configuration pointing at the test broker and the isolated
Podman, and a Podman emptied before and after each test that uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flotta.agent.config import AgentConfig, build_config
from flotta.dev.podman import remove_all_pods
from tests.agent.fleet_peer import FleetPeer
from tests.fixtures.brokers import TestBroker
from tests.fixtures.podman import PodmanTestEnv

AgentConfigFactory = Callable[..., AgentConfig]


@pytest.fixture
async def fleet(mosquitto_broker: TestBroker) -> AsyncIterator[FleetPeer]:
    async with FleetPeer(mosquitto_broker) as peer:
        yield peer


@pytest.fixture
def clean_podman(podman_env: PodmanTestEnv) -> Iterator[PodmanTestEnv]:
    remove_all_pods(podman_env.environment)
    try:
        yield podman_env
    finally:
        remove_all_pods(podman_env.environment)


@pytest.fixture
def agent_config(
    tmp_path: Path, mosquitto_broker: TestBroker, clean_podman: PodmanTestEnv
) -> AgentConfigFactory:
    return config_factory(tmp_path, mosquitto_broker, clean_podman.socket_url)


@pytest.fixture
def agent_config_without_podman(tmp_path: Path, mosquitto_broker: TestBroker) -> AgentConfigFactory:
    """For tests of the connection alone: Podman is unreachable (the agent copes)."""
    return config_factory(tmp_path, mosquitto_broker, f"unix://{tmp_path}/no-podman.sock")


def config_factory(tmp_path: Path, broker: TestBroker, podman_socket: str) -> AgentConfigFactory:
    bootstrap = broker.bootstrap("factory")

    def make(**overrides: Any) -> AgentConfig:
        values: dict[str, Any] = {
            "device_id": "edge-1",
            "state_dir": str(tmp_path / "agent"),
            "files_root": str(tmp_path / "files"),
            "broker_url": f"mqtts://{broker.host}:{broker.port}",
            "enrolment_url": f"mqtts://{broker.host}:{broker.enrolment_port}",
            "ca_cert": str(broker.ca_path),
            "bootstrap_cert": str(bootstrap.cert),
            "bootstrap_key": str(bootstrap.key),
            "podman_socket": podman_socket,
            "heartbeat_seconds": 1,
            "resync_seconds": 2.0,
            "reconnect_base_seconds": 0.2,
            "reconnect_cap_seconds": 1.0,
            "keepalive_seconds": 5,
            "rpm_ostree": "/nonexistent/rpm-ostree",
            "telemetry_max_mib": 8,
        }
        values.update(overrides)
        return build_config(values)

    return make

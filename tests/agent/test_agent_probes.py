"""Probes in the health gate on a real device: real agent, real Podman, real Mosquitto.

Exec probes run through libpod's exec API, HTTP and TCP probes from inside the pod's network
namespace; Podman itself is given no probe (issue #21)."""

from __future__ import annotations

from typing import Any

import pytest

from flotta.agent.daemon import Agent
from flotta.schemas.wire import HealthGate
from tests.agent.conftest import AgentConfigFactory
from tests.agent.fleet_peer import FleetPeer, wait_for
from tests.agent.test_agent_podman import SERVE, RunningAgent
from tests.agent.test_agent_rollouts import good_then, pod, rolled_back, state
from tests.fixtures.podman import PodmanTestEnv

pytestmark = [pytest.mark.podman, pytest.mark.slow]

HTTPD = "mkdir -p /www; exec httpd -f -p 8080 -h /www"
HTTP_PORT = {"ports": [{"name": "http", "containerPort": 8080}]}
# Probes run late on a loaded machine: their timeouts leave room, their periods are short.
TIMINGS = {"periodSeconds": 1, "timeoutSeconds": 10}


async def test_an_http_readiness_probe_that_never_passes_is_rolled_back_with_its_answer(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        probe = {"httpGet": {"path": "/ready", "port": "http"}, **TIMINGS}
        never_ready = pod(
            clean_podman.image, HTTPD, container={**HTTP_PORT, "readinessProbe": probe}
        )
        gate = HealthGate(stabilization_seconds=2, timeout_seconds=20)
        good, before, bad = await good_then(
            fleet, clean_podman, {"web": never_ready}, {"web": gate}
        )
        report = await rolled_back(fleet, clean_podman, good, bad, before)
        assert report.failed is not None
        assert (report.failed.reason, report.failed.workload) == ("timed-out", "web")
        message = report.failed.message
        assert "app: not ready: readiness probe (HTTP GET :8080/ready) failed" in message
        assert "HTTP 404 Not Found" in message  # busybox httpd's answer, from inside the pod
    finally:
        assert await running.stop() == 0


async def test_a_tcp_liveness_probe_on_a_closed_port_fails_the_version(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        probe = {"tcpSocket": {"port": 9}, "failureThreshold": 2, **TIMINGS}
        closed = pod(clean_podman.image, SERVE, container={"livenessProbe": probe})
        slow = HealthGate(stabilization_seconds=30, timeout_seconds=60)
        good, before, bad = await good_then(fleet, clean_podman, {"web": closed}, {"web": slow})
        report = await rolled_back(fleet, clean_podman, good, bad, before)
        assert report.failed is not None
        assert (report.failed.reason, report.failed.container) == ("health-check-failed", "app")
        message = report.failed.message
        assert "liveness probe (TCP :9) failed 2 times in a row" in message
        assert "Connection refused" in message
    finally:
        assert await running.stop() == 0


async def test_a_startup_probe_that_passes_late_holds_the_others_back(
    agent_config: AgentConfigFactory, fleet: FleetPeer, clean_podman: PodmanTestEnv
) -> None:
    running = RunningAgent(Agent(agent_config()))
    try:
        up = {"exec": {"command": ["cat", "/tmp/up"]}}
        probes: dict[str, Any] = {
            "startupProbe": {**up, "failureThreshold": 60, **TIMINGS},
            # fails at its first run: it must not run before the startup probe passed
            "livenessProbe": {**up, "failureThreshold": 1, **TIMINGS},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, **TIMINGS},
        }
        command = "mkdir -p /www; (sleep 5; touch /tmp/up /www/ready) & " + HTTPD.split("; ")[1]
        late = pod(clean_podman.image, command, container={**HTTP_PORT, **probes})
        gate = HealthGate(stabilization_seconds=1, timeout_seconds=60)
        version = await fleet.publish_desired(state({"web": late}, gates={"web": gate}))
        report = await fleet.wait_status(
            lambda s: s.applied_version == version.version or s.failed is not None, within=90
        )
        assert report.failed is None
        assert report.applied_version == version.version
        await wait_for(lambda: "VersionHealthy" in {e.reason for e in fleet.events}, 30)
    finally:
        assert await running.stop() == 0

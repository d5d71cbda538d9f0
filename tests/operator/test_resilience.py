"""The operator survives a restart of the Kubernetes API (resume or relist) and reports
health, readiness and metrics."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from flotta.dev.nats_server import free_port
from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.topics import DeviceTopic, device_topic
from tests.fixtures.brokers import TestBroker
from tests.fixtures.kubeprocess import running_kube
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.builders import workload_obj
from tests.operator.conftest import (
    ENROLMENT_NAMESPACE,
    NAMESPACE,
    Stack,
    add_device,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.slow


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def restartable_stack(tmp_path: Any, mosquitto_broker: TestBroker) -> Any:
    """A stack whose local API listens on a fixed port and keeps little watch history."""
    with (
        running_kube(
            tmp_path / "kube",
            NAMESPACE,
            ENROLMENT_NAMESPACE,
            port=free_port("127.0.0.1"),
            watch_history=5,
        ) as (kube, api),
        running_stack(kube, api, mosquitto_broker) as stack,
    ):
        yield stack


def test_api_restart_resumes_or_relists_and_health_endpoints(restartable_stack: Stack) -> None:
    stack = restartable_stack
    broker = stack.broker
    creds = broker.device("d2", namespace=NAMESPACE)
    add_device(stack, "d1", {"site": "north"})
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        workload_obj("web", selector={"matchLabels": {"site": "north"}}),
    )
    running = stack.start_operator()
    health = running.operator._health
    assert health is not None
    wait_until(lambda: http_get(health.port, "/readyz")[0] == 200)
    assert http_get(health.port, "/healthz") == (200, "ok\n")
    status, metrics = http_get(health.port, "/metrics")
    assert status == 200
    assert "flotta_operator_reconciles_total" in metrics
    assert "flotta_operator_publish_queue_depth" in metrics

    # The API goes away and comes back (same state, fresh watch history).
    stack.kube.stop()
    stack.kube.start()
    for _ in range(10):  # more changes than the watch history keeps
        stack.objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "edgeworkloads",
            "web",
            {"metadata": {"annotations": {"n": str(_)}}},
            _content_type="application/merge-patch+json",
        )
    add_device(stack, "d2", {"site": "north"})
    probe = MqttProbe(broker.host, broker.port, creds, "d2")
    probe.connect()
    try:
        probe.subscribe(device_topic("d2", DeviceTopic.DESIRED))
        from flotta.schemas.codec import decode
        from flotta.schemas.wire.desired import DesiredState

        state = decode(
            DesiredState,
            probe.wait_for(device_topic("d2", DeviceTopic.DESIRED), timeout=30).payload,
        )
        assert [w.name for w in state.workloads] == ["web"]
    finally:
        probe.close()
    device_watcher = next(w for w in running.operator._watchers if w.watched.kind == "EdgeDevice")
    assert device_watcher.errors >= 1
    assert device_watcher.relists >= 1

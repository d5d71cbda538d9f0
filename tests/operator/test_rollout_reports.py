"""Rollouts that progress on the devices' MQTT status reports, through the operator, the local
Kubernetes API and a real Mosquitto with TLS: no bridge writes any EdgeDevice status (the
limit of a bridge throttled to nothing), yet every batch of a good revision goes through in
seconds; a device that sends garbage or speaks too often is refused and counted; with no
rollout under way the operator stops reading the reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from flotta.operator.report_watch import ReportWatch
from flotta.schemas.codec import encode
from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.desired import DesiredState
from flotta.schemas.wire.status import StatusReport
from tests.fixtures.brokers import ProbeFactory
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.builders import pod_spec, workload_obj
from tests.operator.conftest import (
    NAMESPACE,
    Stack,
    add_device,
    wait_until,
)
from tests.operator.mqtt_devices import MqttDevices, online_devices
from tests.operator.test_rollout_integration import get, rollout

pytestmark = pytest.mark.slow

DEVICES = [f"d{i}" for i in range(10)]
POLICY = {"batches": [{"limit": 1}, {"limit": 2}, {"limit": "50%"}], "successThreshold": "100%"}


class ReportingDevices(MqttDevices):
    """Each device applies every desired state it gets and reports it over MQTT, as the agent
    does; nothing writes their EdgeDevice statuses."""

    def __init__(self, probes: dict[str, MqttProbe]) -> None:
        super().__init__(probes)
        self.reports = 0

    def take(self, name: str, desired: DesiredState) -> None:
        self.report_applied(name, desired.version)
        self.reports += 1


@pytest.fixture
def devices(stack: Stack, mqtt_probes: ProbeFactory) -> Iterator[ReportingDevices]:
    probes = online_devices(stack, mqtt_probes, DEVICES)
    with ReportingDevices(probes) as reporting:
        yield reporting


def test_batches_go_through_on_mqtt_reports_without_edgedevice_writes(
    stack: Stack, devices: ReportingDevices, mqtt_probes: ProbeFactory
) -> None:
    add_device(stack, "noisy", {"app": "other"})
    noisy = mqtt_probes.connect(stack.broker.device("noisy"), "noisy")
    stranger = mqtt_probes.connect(stack.broker.device("stranger"), "stranger")
    operator = stack.start_operator(report_linger=0.0)
    watch = operator.operator.context.reports if operator.operator.context else None
    assert isinstance(watch, ReportWatch)
    assert not watch.subscribed  # no rollout yet: nothing read
    started = time.monotonic()
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgeworkloads",
        workload_obj(
            "web",
            NAMESPACE,
            selector={"matchLabels": {"app": "web"}},
            pod=pod_spec("localhost/web:1"),
            extra_spec={"rolloutPolicy": POLICY},
        ),
    )
    # Meanwhile a device outside the rollout sends garbage, far too often, and a device the
    # operator does not know (no EdgeDevice) reports.
    wait_until(lambda: watch.subscribed, timeout=10)
    for _ in range(50):
        noisy.publish(device_topic("noisy", DeviceTopic.STATUS), b"{garbage", qos=0)
    report = encode(StatusReport(time=datetime.now(UTC), applied_version="v"))
    stranger.publish(device_topic("stranger", DeviceTopic.STATUS), report, qos=0)
    wait_until(lambda: rollout(stack).get("phase") == "Complete", timeout=30, interval=0.05)
    elapsed = time.monotonic() - started
    done = rollout(stack)
    assert done["updatedDevices"] == 10
    assert done["currentBatch"] == 4  # 1, 2, 50 % of 7, the rest: each waited for reports
    # Four batches, each waiting for its devices' reports, in a few seconds: the status
    # interval is 0.2 s here and the rollout tick 2 s, so no batch waited for a tick.
    assert elapsed < 6.0, elapsed
    # No EdgeDevice status says anything was applied: the reports alone moved the batches.
    for name in DEVICES:
        status = get(stack, "edgedevices", name).get("status") or {}
        assert not status.get("appliedVersion"), name
    assert operator.metric("flotta_operator_status_reports_total", {"result": "changed"}) >= 10

    def refused() -> float:
        return sum(
            operator.metric("flotta_operator_status_reports_total", {"result": result})
            for result in ("invalid", "rate-limited")
        )

    wait_until(lambda: refused() >= 50, timeout=5)
    assert operator.metric("flotta_operator_status_reports_total", {"result": "invalid"}) >= 10
    unknown = {"result": "unknown-device"}
    assert operator.metric("flotta_operator_status_reports_total", unknown) == 1
    # The rollout is complete: after the linger (the least, 3 ticks) the operator stops
    # reading the reports.
    wait_until(lambda: not watch.subscribed, timeout=15)
    assert watch.episodes == 1
    assert len(watch.reports) == 0

from datetime import UTC, datetime

from flotta.dev.simulator.device import SimulatedDevice
from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.wire import (
    ConnectionState,
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    DeviceEvent,
    MetricsBatch,
    StatusReport,
)
from flotta.schemas.wire.desired import HeartbeatConfiguration

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def desired(*workloads: str, deregister: bool = False) -> bytes:
    state = DesiredState(
        device_id="sim-1",
        namespace="default",
        deregister=deregister,
        workloads=[
            DesiredWorkload(name=w, namespace="default", pod_spec={"containers": []})
            for w in workloads
        ],
    )
    return encode(with_version(state))


def test_applies_a_new_version_and_reports_it_once() -> None:
    device = SimulatedDevice("sim-1")
    payload = desired("web", "db")
    [status] = device.on_desired(payload, NOW)
    report = decode(StatusReport, status.payload)
    assert report.applied_version == decode(DesiredState, payload).version
    assert {(w.name, w.phase) for w in report.workloads} == {("web", "Running"), ("db", "Running")}
    assert device.on_desired(payload, NOW) == []  # same version: nothing to do


def test_birth_announces_the_applied_version_retained() -> None:
    device = SimulatedDevice("sim-1")
    device.on_desired(desired("web"), NOW)
    birth = device.birth(NOW)
    assert birth.retain
    assert birth.topic == "flotta/devices/sim-1/connection"
    assert decode(ConnectionState, birth.payload).applied_version == device.applied_version
    assert decode(ConnectionState, device.will(NOW).payload).state == "offline"


def test_a_failing_workload_is_reported_with_an_event() -> None:
    device = SimulatedDevice("sim-1")
    device.on_desired(desired("web"), NOW)
    status, event = device.fail("web", NOW)
    assert decode(StatusReport, status.payload).workloads[0].phase == "Failed"
    assert decode(DeviceEvent, event.payload).reason == "WorkloadFailed"


def test_bad_and_empty_desired_payloads_change_nothing() -> None:
    device = SimulatedDevice("sim-1")
    device.on_desired(desired("web"), NOW)
    before = device.applied_version
    assert device.on_desired(b"{not json", NOW) == []
    assert device.on_desired(b"", NOW) == []
    assert device.applied_version == before
    assert device.rejected_payloads == 1


def test_deregistration_stops_the_workloads() -> None:
    device = SimulatedDevice("sim-1")
    device.on_desired(desired("web"), NOW)
    device.on_desired(desired(deregister=True), NOW)
    assert device.deregistered
    assert device.phases == {}


def test_metric_batches_are_kept_until_acknowledged_and_resent_identically() -> None:
    device = SimulatedDevice("sim-1", metrics_batch_size=3, max_buffered_batches=2)
    for ms in (1, 2, 3):
        device.produce_metrics(ms)
    assert device.dropped_batches == 1
    first = device.next_metrics()
    assert first is not None
    assert device.next_metrics() == first  # not acknowledged: the same bytes again
    batch = decode(MetricsBatch, first.payload)
    assert batch.sequence == 1
    device.acknowledged()
    second = device.next_metrics()
    assert second is not None
    assert decode(MetricsBatch, second.payload).sequence == 2
    assert decode(MetricsBatch, second.payload).dropped == 3


def test_any_status_is_a_heartbeat_and_the_next_is_a_full_period_later() -> None:
    device = SimulatedDevice("sim-1", heartbeat_seconds=60.0)
    assert device.next_heartbeat() == float("-inf")  # never reported: due at once
    device.status_sent(100.0)
    assert device.next_heartbeat() == 160.0
    every_10_s = DesiredConfiguration(heartbeat=HeartbeatConfiguration(period_seconds=10))
    state = DesiredState(device_id="sim-1", namespace="default", configuration=every_10_s)
    assert len(device.on_desired(encode(with_version(state)), NOW)) == 1  # sent as a status...
    device.status_sent(103.0)
    assert device.next_heartbeat() == 113.0  # ...so the next heartbeat waits the new period

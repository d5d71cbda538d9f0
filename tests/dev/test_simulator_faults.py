"""Injected failures: the chosen share of simulated devices fails an image as the agent does
(applies it, runs it until a container exits or the health gate times out, rolls back, reports
the version failed with the agent's events and never applies it again), or stops reporting; the
rules come from the command line or a followed faults file. Over a real broker, the failure is
due on a timer and the device keeps when it rolled back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from flotta.dev.simulator import device_state
from flotta.dev.simulator.device import FaultRule, SimulatedDevice
from flotta.dev.simulator.faults import FaultError, load_faults, rule
from flotta.dev.simulator.provision import provision
from flotta.dev.simulator.report import summarise
from flotta.dev.simulator.simulated_fleet import Fleet
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles
from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import (
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    DeviceEvent,
    StatusReport,
)
from flotta.schemas.wire.desired import HealthGate
from tests.dev.test_simulator_scale import settings
from tests.fixtures.brokers import TestBroker

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def desired(
    image: str,
    *,
    configuration: DesiredConfiguration | None = None,
    health: HealthGate | None = None,
) -> bytes:
    state = DesiredState(
        device_id="sim-1",
        namespace="default",
        configuration=configuration or DesiredConfiguration(),
        workloads=[
            DesiredWorkload(
                name="web",
                namespace="default",
                pod_spec={"containers": [{"name": "main", "image": image}]},
                health=health,
            )
        ],
    )
    return encode(with_version(state))


def test_a_failing_device_applies_then_rolls_back_and_never_applies_that_version_again() -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="web:broken", after=3),))
    device.on_desired(desired("web:1"), NOW)
    good = device.applied_version
    bad = desired("web:broken")
    bad_version = decode(DesiredState, bad).version
    # As the agent: the version is applied first and reported as being applied.
    [applying] = device.on_desired(bad, NOW)
    report = decode(StatusReport, applying.payload)
    assert (report.applied_version, report.applying_version) == (good, bad_version)
    assert report.failed is None
    assert device.transaction is not None
    assert device.transaction.seconds == 3
    assert device.on_desired(bad, NOW) == []  # being applied: nothing new
    assert device.fail_transaction("sha256:other", NOW) == []
    # Its container exits: back on the good version, failed and rolled back, with the events.
    later = NOW + timedelta(seconds=3)
    status, failed_event, rolled_back_event = device.fail_transaction(bad_version, later)
    report = decode(StatusReport, status.payload)
    assert (report.applied_version, report.applying_version) == (good, "")
    assert report.failed is not None
    assert report.failed.version == bad_version
    assert (report.failed.reason, report.failed.workload, report.failed.container) == (
        "container-exited",
        "web",
        "main",
    )
    assert report.failed.exit_code == 1
    assert report.failed.rolled_back
    assert report.failed.time == later
    failed = decode(DeviceEvent, failed_event.payload)
    assert (failed.reason, failed.type, failed.workload) == ("VersionFailed", "Warning", "web")
    assert "container-exited" in failed.message
    rolled_back = decode(DeviceEvent, rolled_back_event.payload)
    assert (rolled_back.reason, rolled_back.type) == ("VersionRolledBack", "Normal")
    assert good in rolled_back.message
    assert device.transaction is None
    assert device.on_desired(bad, NOW) == []  # never again
    assert device.transaction is None
    # a newer version is applied, and the failure is forgotten once it runs
    [fixed] = device.on_desired(desired("web:2"), NOW)
    assert decode(StatusReport, fixed.payload).failed is None


def test_a_version_that_never_becomes_healthy_fails_at_the_gates_timeout() -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="stuck", mode="timeout"),))
    gate = HealthGate(stabilization_seconds=5, timeout_seconds=20)
    device.on_desired(desired("stuck", configuration=DesiredConfiguration(health=gate)), NOW)
    assert device.transaction is not None
    assert device.transaction.seconds == 20
    [status, *_] = device.fail_transaction(device.transaction.version, NOW)
    failure = decode(StatusReport, status.payload).failed
    assert failure is not None
    assert (failure.reason, failure.rolled_back) == ("timed-out", True)
    # A workload's own gate counts, and a slow exit fails at the timeout at the latest.
    own = SimulatedDevice("sim-1", faults=(FaultRule(image="stuck", after=60),))
    own.on_desired(desired("stuck", health=HealthGate(timeout_seconds=7)), NOW)
    assert own.transaction is not None
    assert own.transaction.seconds == 7


def test_a_newer_version_or_the_good_one_ends_the_apply_of_a_failing_one() -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="broken", after=10),))
    device.on_desired(desired("web:1"), NOW)
    good = device.applied_version
    device.on_desired(desired("broken"), NOW)
    assert device.transaction is not None
    bad_version = device.transaction.version
    [back] = device.on_desired(desired("web:1"), NOW)  # the operator reverted
    report = decode(StatusReport, back.payload)
    assert (report.applied_version, report.applying_version) == (good, "")
    assert device.transaction is None
    assert device.fail_transaction(bad_version, NOW) == []  # its failure is no longer due
    device.on_desired(desired("broken"), NOW)
    [newer] = device.on_desired(desired("web:2"), NOW)
    assert decode(StatusReport, newer.payload).applied_version == device.applied_version != good
    assert device.transaction is None
    assert device.failed is None


def test_a_failed_version_is_applied_again_once_per_new_retry_token() -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="web:broken"),))
    device.on_desired(desired("web:1"), NOW)
    good = device.applied_version
    bad = decode(DesiredState, desired("web:broken"))
    device.on_desired(encode(bad), NOW)
    device.fail_transaction(bad.version, NOW)
    assert device.failed is not None
    assert device.failed.retry == 0

    def retried(token: int) -> bytes:
        return encode(msgspec.structs.replace(bad, retry=token))

    [applying] = device.on_desired(retried(1), NOW)  # tried again, and fails again
    assert decode(StatusReport, applying.payload).applying_version == bad.version
    [status, *_] = device.fail_transaction(bad.version, NOW)
    failure = decode(StatusReport, status.payload).failed
    assert failure is not None
    assert failure.retry == 1
    device.faults = ()  # it would run now
    assert device.on_desired(retried(1), NOW) == []  # but not without a new token
    assert device.on_desired(encode(bad), NOW) == []
    assert device.applied_version == good
    [healthy] = device.on_desired(retried(2), NOW)
    report = decode(StatusReport, healthy.payload)
    assert (report.applied_version, report.failed) == (bad.version, None)


def test_only_the_chosen_share_fails_the_same_devices_every_time() -> None:
    half = FaultRule(image="web:broken", share=0.5)
    chosen = [f"sim-{i:05d}" for i in range(1000) if half.picks(f"sim-{i:05d}")]
    assert 400 < len(chosen) < 600
    assert chosen == [f"sim-{i:05d}" for i in range(1000) if half.picks(f"sim-{i:05d}")]


def test_health_check_and_silent_modes() -> None:
    checked = SimulatedDevice("sim-1", faults=(FaultRule(image="x", mode="health-check"),))
    checked.on_desired(desired("x"), NOW)
    assert checked.transaction is not None
    [status, *_] = checked.fail_transaction(checked.transaction.version, NOW)
    failure = decode(StatusReport, status.payload).failed
    assert failure is not None
    assert (failure.reason, failure.exit_code) == ("health-check-failed", None)
    silent = SimulatedDevice("sim-1", faults=(FaultRule(image="x", mode="silent"),))
    assert silent.on_desired(desired("x"), NOW) == []
    assert silent.silent
    silent.on_desired(desired("y"), NOW)
    assert not silent.silent


def test_the_failed_version_survives_a_simulator_restart(tmp_path: Path) -> None:
    device = SimulatedDevice("sim-1", faults=(FaultRule(image="x"),))
    device.on_desired(desired("x"), NOW)
    assert device.transaction is not None
    device.fail_transaction(device.transaction.version, NOW)
    device_state.save(device, tmp_path)
    again = SimulatedDevice("sim-1")
    assert device_state.load(again, tmp_path)
    assert again.failed == device.failed
    assert again.on_desired(desired("x"), NOW) == []


def test_faults_files(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(
        json.dumps(
            [
                {"image": "a", "share": 0.25, "mode": "silent"},
                {"image": "b", "mode": "exit", "after": 2.5},
                {"image": "c", "mode": "timeout"},
            ]
        )
    )
    assert load_faults(path) == (
        FaultRule(image="a", share=0.25, mode="silent"),
        FaultRule(image="b", after=2.5),
        FaultRule(image="c", mode="timeout"),
    )
    path.write_text("{not json")
    assert load_faults(path) == ()
    for bad in (
        {},
        {"image": "a", "share": 2},
        {"image": "a", "mode": "explode"},
        {"image": "a", "after": -1},
        {"image": "a", "after": "5"},
        "a",
    ):
        with pytest.raises(FaultError):
            rule(bad)


async def test_over_the_broker_the_failure_is_due_on_a_timer_and_the_rollback_timed(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    ids = ["sim-00000"]
    provision(mosquitto_broker.pki, tmp_path, ids, namespace="default")
    creds = mosquitto_broker.observer("faults")
    observer = MqttClient(
        MqttSettings(
            host=mosquitto_broker.host,
            port=mosquitto_broker.port,
            client_id="faults",
            tls=TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False),
            clean_start=True,
        )
    )
    await observer.connect()
    await observer.subscribe([("flotta/devices/+/status", 1), ("flotta/devices/+/events", 1)])
    fleet = Fleet(
        replace(
            settings(mosquitto_broker, tmp_path),
            faults=(FaultRule(image="broken", after=1.5),),
            heartbeat_seconds=3600,
        ),
        ids,
    )
    stop = asyncio.Event()
    running = asyncio.ensure_future(fleet.run(stop))
    seen: list[tuple[float, str, StatusReport | DeviceEvent]] = []

    async def until(what: Callable[[StatusReport | DeviceEvent], bool]) -> float:
        async with asyncio.timeout(20):
            async for message in observer.messages():
                kind = message.topic.rsplit("/", 1)[1]
                item: StatusReport | DeviceEvent = (
                    decode(StatusReport, message.payload)
                    if kind == "status"
                    else decode(DeviceEvent, message.payload)
                )
                seen.append((time.monotonic(), kind, item))
                if what(item):
                    return time.monotonic()
        raise AssertionError("not seen")

    try:
        good = await publish_one(mosquitto_broker, "sim-00000", "web:1")
        await until(lambda r: isinstance(r, StatusReport) and r.applied_version == good)
        bad = await publish_one(mosquitto_broker, "sim-00000", "web:broken")
        applying_at = await until(
            lambda r: isinstance(r, StatusReport) and r.applying_version == bad
        )
        rolled_back_at = await until(
            lambda r: isinstance(r, StatusReport) and r.failed is not None and r.failed.rolled_back
        )
        assert rolled_back_at - applying_at >= 1.4  # the container ran for 1.5 s
        final = seen[-1][2]
        assert isinstance(final, StatusReport)
        assert (final.applied_version, final.applying_version) == (good, "")
        await until(lambda e: isinstance(e, DeviceEvent) and e.reason == "VersionRolledBack")
        reasons = [item.reason for _, kind, item in seen if isinstance(item, DeviceEvent)]
        assert reasons == ["VersionFailed", "VersionRolledBack"]
        device = fleet.devices["sim-00000"]
        assert device.rollback is not None
        received, reported = device.rollback
        assert 1.4 <= reported - received < 10
        assert summarise([device.view()]).rollbacks_since(received - 1) == [device.rollback]
    finally:
        stop.set()
        await running
        await observer.close()


async def publish_one(broker: TestBroker, device_id: str, image: str) -> str:
    creds = broker.operator()
    operator = MqttClient(
        MqttSettings(
            host=broker.host,
            port=broker.services_port,
            client_id="test-faults-operator",
            tls=TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False),
            clean_start=True,
        )
    )
    state = with_version(
        DesiredState(
            device_id=device_id,
            namespace="default",
            workloads=[
                DesiredWorkload(
                    name="web",
                    namespace="default",
                    pod_spec={"containers": [{"name": "main", "image": image}]},
                )
            ],
        )
    )
    async with operator:
        await operator.publish(
            device_topic(device_id, DeviceTopic.DESIRED), encode(state), retain=True
        )
    return state.version

"""The simulator at scale: provisioned identities, a fleet in one loop, offline and back, resume."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from flotta.dev.simulator import device_state
from flotta.dev.simulator.device import SimulatedDevice
from flotta.dev.simulator.limits import raise_open_files
from flotta.dev.simulator.provision import provision
from flotta.dev.simulator.shards import ShardError, device_ids, shard_of
from flotta.dev.simulator.simulated_fleet import Fleet, FleetSettings, NotProvisionedError
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles
from flotta.pki.keys import load_certificate
from flotta.schemas.codec import decode, encode, with_version
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import ConnectionState, DesiredState, DesiredWorkload, StatusReport
from tests.fixtures.brokers import TestBroker
from tests.fixtures.sources import source_path


def desired(device_id: str, round_: str) -> DesiredState:
    return with_version(
        DesiredState(
            device_id=device_id,
            namespace="default",
            workloads=[
                DesiredWorkload(
                    name="app", namespace="default", pod_spec={"containers": [], "r": round_}
                )
            ],
        )
    )


def settings(broker: TestBroker, state_dir: Path) -> FleetSettings:
    return FleetSettings(
        host=broker.host,
        port=broker.port,
        ca=broker.ca_path,
        bootstrap_cert=None,
        bootstrap_key=None,
        state_dir=state_dir,
        metrics_interval=0,
        connect_spread=0.2,
    )


class Watcher:
    """Latest applied version and connection state per device, as an observer sees them."""

    def __init__(self, broker: TestBroker) -> None:
        creds = broker.operator()
        self.client = MqttClient(
            MqttSettings(
                host=broker.host,
                port=broker.services_port,
                client_id="test-fleet-watcher",
                tls=TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False),
                clean_start=True,
            )
        )
        self.applied: dict[str, str] = {}
        self.statuses: collections.Counter[str] = collections.Counter()
        self.connection: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def follow(self) -> None:
        async for message in self.client.messages():
            device = message.topic.split("/")[2]
            if message.topic.endswith("/status"):
                self.applied[device] = decode(StatusReport, message.payload).applied_version
                self.statuses[device] += 1
            elif message.payload:
                self.connection[device] = decode(ConnectionState, message.payload).state
            self.changed.set()

    async def until(self, condition: Callable[[], bool], seconds: float = 20) -> None:
        async with asyncio.timeout(seconds):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture(name="watcher")
async def watcher_fixture(mosquitto_broker: TestBroker) -> AsyncIterator[Watcher]:
    watcher = Watcher(mosquitto_broker)
    await watcher.client.connect()
    await watcher.client.subscribe(
        [("flotta/devices/+/status", 1), ("flotta/devices/+/connection", 1)]
    )
    task = asyncio.ensure_future(watcher.follow())
    yield watcher
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await watcher.client.close()


async def publish_desired(broker: TestBroker, ids: list[str], round_: str) -> dict[str, str]:
    creds = broker.operator()
    operator = MqttClient(
        MqttSettings(
            host=broker.host,
            port=broker.services_port,
            client_id="test-fleet-operator",
            tls=TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False),
            clean_start=True,
        )
    )
    versions = {}
    async with operator:
        for device_id in ids:
            state = desired(device_id, round_)
            versions[device_id] = state.version
            await operator.publish(
                device_topic(device_id, DeviceTopic.DESIRED), encode(state), retain=True
            )
    return versions


def test_provisioning_issues_each_device_its_own_certificate_once(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    ids = device_ids("sim", 3)
    assert provision(mosquitto_broker.pki, tmp_path, ids, namespace="default") == 3
    assert provision(mosquitto_broker.pki, tmp_path, ids, namespace="default") == 0
    cert = load_certificate((tmp_path / "sim-00002" / "device.crt").read_bytes())
    assert cert.subject.rfc4514_string().startswith("CN=sim-00002")
    assert oct((tmp_path / "sim-00002" / "device.key").stat().st_mode & 0o777) == "0o600"


def test_shards_cover_the_fleet_once() -> None:
    ids = device_ids("sim", 10)
    shards = [shard_of(ids, i, 3) for i in range(3)]
    assert sorted(i for shard in shards for i in shard) == ids
    assert [len(s) for s in shards] == [4, 3, 3]
    with pytest.raises(ShardError, match=r"shard 3 is not in 0\.\.2"):
        shard_of(ids, 3, 3)


def test_open_file_limit_is_raised_up_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
        assert raise_open_files(1024 if hard >= 1024 else hard) == min(1024, hard)
        assert raise_open_files(10) == min(1024, hard)  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_saved_state_is_restored_and_a_malformed_file_ignored(tmp_path: Path) -> None:
    device = SimulatedDevice("sim-1", applied_version="sha256:abc", phases={"web": "Running"})
    device_state.save(device, tmp_path)
    fresh = SimulatedDevice("sim-1")
    assert device_state.load(fresh, tmp_path)
    assert (fresh.applied_version, fresh.phases) == ("sha256:abc", {"web": "Running"})
    (tmp_path / device_state.STATE_NAME).write_text('{"applied_version": 1, "phases": {}}')
    other = SimulatedDevice("sim-1")
    assert not device_state.load(other, tmp_path)
    assert other.applied_version == ""


async def test_device_without_identity_or_bootstrap_fails_clearly(
    mosquitto_broker: TestBroker, tmp_path: Path
) -> None:
    fleet = Fleet(settings(mosquitto_broker, tmp_path), ["sim-00009"])
    with pytest.raises(NotProvisionedError, match="no bootstrap identity"):
        await fleet.devices["sim-00009"].enrol()


async def test_provisioned_fleet_applies_goes_offline_comes_back_and_resumes(
    mosquitto_broker: TestBroker, watcher: Watcher, tmp_path: Path
) -> None:
    ids = device_ids("sim", 5)
    provision(mosquitto_broker.pki, tmp_path, ids, namespace="default")
    first = await publish_desired(mosquitto_broker, ids, "1")  # retained before they connect
    fleet = Fleet(settings(mosquitto_broker, tmp_path), ids)
    stop = asyncio.Event()
    running = asyncio.ensure_future(fleet.run(stop))
    try:
        await watcher.until(lambda: watcher.applied == first)
        assert fleet.applied(first["sim-00000"]) == 1

        leaving = fleet.devices["sim-00003"]
        leaving.go_offline()
        await watcher.until(lambda: watcher.connection.get("sim-00003") == "offline")
        second = await publish_desired(mosquitto_broker, ids, "2")
        await watcher.until(lambda: sum(watcher.applied[i] == second[i] for i in ids) == 4)
        assert watcher.applied["sim-00003"] == first["sim-00003"]  # offline: not applied yet

        leaving.come_back()
        await watcher.until(lambda: watcher.applied == second)
        assert watcher.connection["sim-00003"] == "online"
    finally:
        stop.set()
        await running
    # A new simulator on the same state dir resumes the same fleet where it was.
    resumed = Fleet(settings(mosquitto_broker, tmp_path), ids)
    assert all(d.resumed for d in resumed.devices.values())
    assert {i: d.device.applied_version for i, d in resumed.devices.items()} == second


async def test_a_device_reports_its_status_on_every_connect_as_the_agent_does(
    mosquitto_broker: TestBroker, watcher: Watcher, tmp_path: Path
) -> None:
    ids = device_ids("sim", 2)
    provision(mosquitto_broker.pki, tmp_path, ids, namespace="default")
    slow = replace(settings(mosquitto_broker, tmp_path), heartbeat_seconds=3600)
    fleet = Fleet(slow, ids)
    stop = asyncio.Event()
    running = asyncio.ensure_future(fleet.run(stop))
    try:
        await watcher.until(lambda: watcher.statuses == {"sim-00000": 1, "sim-00001": 1})
        device = fleet.devices["sim-00001"]
        device.go_offline()
        await watcher.until(lambda: watcher.connection.get("sim-00001") == "offline")
        device.come_back()
        await watcher.until(lambda: watcher.statuses["sim-00001"] == 2)
        assert watcher.statuses["sim-00000"] == 1  # no heartbeat within the hour's period
    finally:
        stop.set()
        await running


async def test_simulate_command_runs_the_fleet_in_several_processes(
    mosquitto_broker: TestBroker, watcher: Watcher, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": source_path()}
    ids = device_ids("cli", 4)
    await publish_desired(mosquitto_broker, ids, "1")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "flotta.cli", "dev", "simulate"),
        *("--state-dir", str(tmp_path / "sim"), "--devices", "4", "--prefix", "cli"),
        *("--mqtt-port", str(mosquitto_broker.port), "--ca", str(mosquitto_broker.ca_path)),
        *("--pki-dir", str(mosquitto_broker.pki.root), "--processes", "2"),
        *("--metrics-interval", "0", "--connect-spread", "0.5"),
        env=env,
    )
    try:
        await watcher.until(lambda: sorted(watcher.applied) == ids, seconds=40)
        assert all(watcher.connection[i] == "online" for i in ids)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 0
    saved = [json.loads((tmp_path / "sim" / i / "state.json").read_bytes()) for i in ids]
    assert [s["applied_version"] for s in saved] == [watcher.applied[i] for i in ids]

"""The simulator's reports: what benchmarks read instead of subscribing to every device."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from flotta.dev.simulator.mqtt_warnings import MAX_KINDS, WarningCounter
from flotta.dev.simulator.provision import provision
from flotta.dev.simulator.report import (
    DeviceView,
    FleetReport,
    read_reports,
    report_path,
    summarise,
)
from flotta.dev.simulator.shards import device_ids
from flotta.dev.simulator.simulated_fleet import Fleet
from tests.dev.test_simulator_scale import (  # noqa: F401 - watcher_fixture is a fixture
    Watcher,
    publish_desired,
    settings,
    watcher_fixture,
)
from tests.fixtures.brokers import TestBroker


def test_a_summary_counts_online_devices_births_and_version_changes() -> None:
    report = summarise(
        [
            DeviceView(online_since=100.04, reported_at=50.0),
            DeviceView(online_since=100.26, reported_at=100.31),
            DeviceView(online_since=None, reported_at=50.05),
            DeviceView(online_since=None, reported_at=0.0),
        ]
    )
    assert (report.devices, report.online, report.unreported) == (4, 2, 1)
    assert report.online_since(99.0) == 2
    assert report.online_since(100.2) == 1  # the birth at 100.04 was before
    assert report.online_since(100.0) == 2  # within the same tenth of a second counts
    assert report.online_since(100.3) == 0
    assert report.changed_since(60.0) == 1
    assert report.changed_since(0.0) == 3
    assert report.first_change_since(60.0) == 100.3
    assert report.first_change_since(101.0) is None
    assert (report.last_birth, report.last_change) == (100.26, 100.31)


def test_reports_of_several_processes_add_up_and_a_missing_one_counts_nothing(
    tmp_path: Path,
) -> None:
    base = tmp_path / "report.json"
    assert report_path(base, None) == base
    first, second, missing = (report_path(base, shard) for shard in range(3))
    assert first.name == "report.json.0"
    first.write_bytes(summarise([DeviceView(5.0, 4.0), DeviceView(None, 7.0)]).to_json())
    second.write_bytes(summarise([DeviceView(5.05, 6.0), DeviceView(None)]).to_json())
    total = read_reports([first, second, missing])
    assert (total.devices, total.online, total.unreported) == (4, 2, 1)
    assert total.online_since(5.0) == 2
    assert total.changed_since(5.0) == 2
    assert (total.last_birth, total.last_change) == (5.05, 7.0)
    second.write_bytes(b'{"devices": 1, "onl')  # not JSON: counts as nothing
    assert read_reports([first, second]).devices == 2
    second.write_bytes(b'{"devices": "one", "births": [], "changes": {"x": 1}}')  # ignored
    assert read_reports([first, second]) == read_reports([first])


def test_an_empty_report_reports_nothing() -> None:
    report = FleetReport()
    assert (report.devices, report.online, report.online_since(0.0)) == (0, 0, 0)
    assert report.changed_since(0.0) == 0
    assert report.first_change_since(0.0) is None


async def test_the_report_follows_the_fleet_as_the_broker_sees_it(
    mosquitto_broker: TestBroker, watcher: Watcher, tmp_path: Path
) -> None:
    ids = device_ids("sim", 4)
    provision(mosquitto_broker.pki, tmp_path, ids, namespace="default")
    path = tmp_path / "report.json"
    fleet_settings = dataclasses.replace(settings(mosquitto_broker, tmp_path), report_path=path)
    since = time.time()
    versions = await publish_desired(mosquitto_broker, ids, "1")
    fleet = Fleet(fleet_settings, ids)
    stop = asyncio.Event()
    running = asyncio.ensure_future(fleet.run(stop))

    async def report_until(check: Callable[[FleetReport], bool]) -> FleetReport:
        async with asyncio.timeout(20):
            while True:
                report = read_reports([path])
                if check(report):
                    return report
                await asyncio.sleep(0.05)

    try:
        report = await report_until(
            lambda r: r.online_since(since) == 4 and r.changed_since(since) == 4
        )
        assert (report.devices, report.unreported) == (4, 0)
        assert since <= report.last_change <= time.time()
        assert since <= report.last_birth <= time.time()
        # The broker had every acknowledgement the report counts: the watcher sees them too.
        await watcher.until(lambda: watcher.applied == versions)

        fleet.devices["sim-00002"].go_offline()
        report = await report_until(lambda r: r.online == 3)
        assert report.online_since(since) == 3
        await watcher.until(lambda: watcher.connection.get("sim-00002") == "offline")
        back = time.time()
        fleet.devices["sim-00002"].come_back()
        report = await report_until(lambda r: r.online_since(back) == 1 and r.online == 4)
        assert report.changed_since(back) == 0  # back with the version it had: no change
        changed = time.time()
        second = await publish_desired(mosquitto_broker, ids, "2")
        await report_until(lambda r: r.changed_since(changed) == 4)
        await watcher.until(lambda: watcher.applied == second)
    finally:
        stop.set()
        await running


def test_mqtt_warnings_are_counted_by_kind_and_summed_across_processes(tmp_path: Path) -> None:
    counter = WarningCounter()
    logger = logging.getLogger("test.simulator.mqtt_warnings")
    logger.addFilter(counter)
    seen: list[str] = []
    printed = logging.Handler()
    printed.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(printed)
    try:
        for device in ("sim-00001", "sim-00002"):
            logger.warning("MQTT %s: cannot connect to 127.0.0.1:4242: connection refused", device)
        logger.warning("MQTT sim-00003: cannot connect to 127.0.0.1:4242: no CONNACK within 60 s")
        for n in range(MAX_KINDS + 5):
            logger.warning("MQTT sim-00004: kind %s", "abcdefghijklmnopqrstuvwxyz"[n])
        logger.error("MQTT sim-00005: resubscribing failed")
    finally:
        logger.removeFilter(counter)
        logger.removeHandler(printed)
    assert seen == ["MQTT sim-00005: resubscribing failed"]  # only errors get through
    refused = "cannot connect to N.N.N.N:N: connection refused"
    assert counter.counts[refused] == 2
    assert counter.counts["cannot connect to N.N.N.N:N: no CONNACK within N s"] == 1
    assert len(counter.counts) == MAX_KINDS + 1
    assert counter.counts["other"] == 8
    first, second = tmp_path / "r.0", tmp_path / "r.1"
    for path in (first, second):
        report = summarise([DeviceView(None)])
        report.mqtt_warnings.update({refused: 2})
        path.write_bytes(report.to_json())
    assert read_reports([first, second]).mqtt_warnings == {refused: 4}

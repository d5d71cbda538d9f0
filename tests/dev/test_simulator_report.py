"""The simulator's reports: what benchmarks read instead of subscribing to every device."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from flotta.dev.simulator.fleet import Fleet
from flotta.dev.simulator.provision import provision
from flotta.dev.simulator.report import (
    DeviceView,
    FleetReport,
    read_reports,
    report_path,
    summarise,
)
from flotta.dev.simulator.shards import device_ids
from tests.dev.test_simulator_scale import (  # noqa: F401 - watcher_fixture is a fixture
    Watcher,
    publish_desired,
    settings,
    watcher_fixture,
)
from tests.fixtures.brokers import TestBroker


def test_a_summary_counts_online_devices_births_and_versions() -> None:
    report = summarise(
        [
            DeviceView(online_since=100.04, reported_version="v1"),
            DeviceView(online_since=100.26, reported_version="v2"),
            DeviceView(online_since=None, reported_version="v1"),
            DeviceView(online_since=None, reported_version=""),
        ]
    )
    assert (report.devices, report.online) == (4, 2)
    assert report.reported == {"v1": 2, "v2": 1, "": 1}
    assert report.reporting({"v1", "v2"}) == 3
    assert report.online_since(99.0) == 2
    assert report.online_since(100.2) == 1  # the birth at 100.04 was before
    assert report.online_since(100.0) == 2  # within the same tenth of a second counts
    assert report.online_since(100.3) == 0


def test_acknowledgement_times_are_kept_per_version_across_processes(tmp_path: Path) -> None:
    first, second = tmp_path / "r.0", tmp_path / "r.1"
    first.write_bytes(
        summarise(
            [DeviceView(10.0, "v1", 3.0), DeviceView(12.5, "v2", 7.0), DeviceView(None, "v2", 6.0)]
        ).to_json()
    )
    second.write_bytes(
        summarise([DeviceView(11.0, "v2", 5.0), DeviceView(None, "", 0.0)]).to_json()
    )
    total = read_reports([first, second])
    assert total.first_report({"v2"}) == 5.0
    assert total.last_report({"v2"}) == 7.0
    assert total.first_report({"v1", "v2"}) == 3.0
    assert total.last_report({"v3"}) == 0.0
    assert "" not in total.first_reported  # never acknowledged: no time
    assert total.last_birth == 12.5  # online devices only


def test_reports_of_several_processes_add_up_and_a_missing_one_counts_nothing(
    tmp_path: Path,
) -> None:
    base = tmp_path / "report.json"
    assert report_path(base, None) == base
    first, second, missing = (report_path(base, shard) for shard in range(3))
    assert first.name == "report.json.0"
    first.write_bytes(summarise([DeviceView(5.0, "v1"), DeviceView(None, "v1")]).to_json())
    second.write_bytes(summarise([DeviceView(5.05, "v2")]).to_json())
    total = read_reports([first, second, missing])
    assert (total.devices, total.online) == (3, 2)
    assert total.reported == {"v1": 2, "v2": 1}
    assert total.online_since(5.0) == 2
    second.write_bytes(b'{"devices": 1, "onl')  # not JSON: counts as nothing
    assert read_reports([first, second]).devices == 2
    second.write_bytes(b'{"devices": "one", "reported": []}')  # wrong types: ignored
    assert read_reports([first, second]) == read_reports([first])


def test_an_empty_report_reports_nothing() -> None:
    report = FleetReport()
    assert (report.devices, report.online, report.online_since(0.0)) == (0, 0, 0)
    assert report.reporting({"v1"}) == 0


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
            lambda r: r.online_since(since) == 4 and r.reporting(versions.values()) == 4
        )
        assert report.devices == 4
        assert (
            since
            <= report.first_report(versions.values())
            <= report.last_report(versions.values())
            <= time.time()
        )
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
        assert report.reporting(versions.values()) == 4
    finally:
        stop.set()
        await running

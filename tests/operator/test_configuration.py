from flotta.operator.configuration import (
    build_configuration,
    configuration_source,
    referenced_configmaps,
)
from tests.operator.builders import device, device_set

_NO_DATA: dict[str, dict[str, str]] = {}
NO_CONFIGMAPS = _NO_DATA.get


def test_defaults_for_a_device_without_configuration() -> None:
    configuration = build_configuration(device("d1").spec, NO_CONFIGMAPS)
    assert configuration.heartbeat.period_seconds == 60
    assert configuration.metrics.system.interval == 60
    assert configuration.metrics.retention_max_hours == 168
    assert configuration.mounts == []
    assert configuration.log_collection == {}


def test_device_sections_apply_without_a_set() -> None:
    d = device(
        "d1", spec={"heartbeat": {"periodSeconds": 15}, "osInformation": {"commitID": "abc"}}
    )
    configuration = build_configuration(configuration_source(d, None), NO_CONFIGMAPS)
    assert configuration.heartbeat.period_seconds == 15
    assert configuration.os.commit_id == "abc"


def test_set_wins_as_a_whole_and_its_empty_sections_mean_defaults() -> None:
    d = device(
        "d1",
        labels={"flotta/member-of": "north"},
        spec={"heartbeat": {"periodSeconds": 15}, "osInformation": {"commitID": "abc"}},
    )
    s = device_set("north", spec={"osInformation": {"commitID": "set-commit"}})
    configuration = build_configuration(configuration_source(d, s), NO_CONFIGMAPS)
    assert configuration.os.commit_id == "set-commit"
    # The set has no heartbeat section: defaults, not the device's 15 s.
    assert configuration.heartbeat.period_seconds == 60


def test_metrics_allow_list_and_syslog_target_come_from_configmaps() -> None:
    d = device(
        "d1",
        spec={
            "metrics": {"system": {"interval": 30, "allowList": {"name": "allow"}}},
            "logCollection": {
                "syslog": {"kind": "syslog", "bufferSize": 20, "syslogConfig": {"name": "sl"}}
            },
        },
    )
    configmaps = {
        "allow": {"metrics_list.yaml": "names:\n  - node_cpu_seconds_total\n  - node_load1\n"},
        "sl": {"address": "127.0.0.1:514", "protocol": "tcp"},
    }
    configuration = build_configuration(d.spec, configmaps.get)
    assert configuration.metrics.system.allow_list == ["node_cpu_seconds_total", "node_load1"]
    assert configuration.log_collection["syslog"].buffer_size_kib == 20
    assert configuration.log_collection["syslog"].target == {
        "address": "127.0.0.1:514",
        "protocol": "tcp",
    }
    assert referenced_configmaps(d.spec) == {"allow", "sl"}


def test_unreadable_allow_list_means_no_filter() -> None:
    d = device("d1", spec={"metrics": {"system": {"allowList": {"name": "allow"}}}})
    configuration = build_configuration(d.spec, {"allow": {"metrics_list.yaml": ": ["}}.get)
    assert configuration.metrics.system.allow_list is None

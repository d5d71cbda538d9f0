"""A device's configuration section of the desired state: set/device precedence and defaults.

Upstream precedence: when the device's set (label ``flotta/member-of``) exists, every
section comes from the set as a whole, and a section the set leaves empty means defaults;
otherwise every section comes from the device. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import yaml

from flotta.schemas.crd.config import DeviceConfiguration
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.rollout import RolloutPolicy, parse_duration
from flotta.schemas.wire.desired import (
    DesiredConfiguration,
    HealthGate,
    HeartbeatConfiguration,
    LogCollectionSettings,
    MetricsSettings,
    OsInformation,
    SystemMetricsSettings,
    UpdateSchedule,
)

# The ConfigMap key upstream Flotta reads a metrics allow list from.
ALLOW_LIST_KEY = "metrics_list.yaml"

ConfigMapLookup = Callable[[str], Mapping[str, str] | None]


def configuration_source(
    device: EdgeDevice, device_set: EdgeDeviceSet | None
) -> DeviceConfiguration:
    """The sections that apply: the set's when it exists, else the device's."""
    return device_set.spec if device_set is not None else device.spec


def build_configuration(
    source: DeviceConfiguration, configmaps: ConfigMapLookup
) -> DesiredConfiguration:
    metrics = source.metrics
    system = metrics.system if metrics and metrics.system else None
    retention = metrics.retention if metrics and metrics.retention else None
    metrics_settings = MetricsSettings(
        system=SystemMetricsSettings(
            interval=system.interval if system else 60,
            disabled=system.disabled if system else False,
            allow_list=(
                allow_list(configmaps(system.allow_list.name))
                if system and system.allow_list
                else None
            ),
        ),
        retention_max_mib=retention.max_mi_b if retention else 200,
        retention_max_hours=retention.max_hours if retention else 168,
    )
    log_collection = {
        name: LogCollectionSettings(
            kind=config.kind,
            buffer_size_kib=config.buffer_size,
            target=dict(configmaps(config.syslog_config.name) or {})
            if config.syslog_config
            else {},
        )
        for name, config in sorted((source.log_collection or {}).items())
    }
    policy: RolloutPolicy | None = getattr(source, "rollout_policy", None)  # a set's
    return DesiredConfiguration(
        heartbeat=source.heartbeat or HeartbeatConfiguration(),
        os=source.os_information or OsInformation(),
        mounts=list(source.mounts or ()),
        metrics=metrics_settings,
        log_collection=log_collection,
        health=health_gate(policy) or HealthGate(),
        update_schedule=update_schedule(source),
    )


def health_gate(policy: RolloutPolicy | None) -> HealthGate | None:
    """The wire health gate of a rollout policy; None when it sets none."""
    if policy is None or policy.health_gate is None:
        return None
    gate = policy.health_gate
    return HealthGate(
        stabilization_seconds=gate.stabilization_seconds, timeout_seconds=gate.timeout_seconds
    )


def update_schedule(source: DeviceConfiguration) -> UpdateSchedule | None:
    """``updatePolicy.updateSchedule`` as the device reads it."""
    schedule = source.update_policy.update_schedule if source.update_policy else None
    if schedule is None:
        return None
    grace = schedule.start_grace_duration
    return UpdateSchedule(
        at=schedule.at.strip(),
        time_zone=schedule.time_zone,
        start_grace_seconds=int(parse_duration(grace).total_seconds()) if grace else 0,
    )


def allow_list(data: Mapping[str, str] | None) -> list[str] | None:
    """Metric names from an upstream allow-list ConfigMap (``names:`` in metrics_list.yaml);
    None (no filtering) when the ConfigMap or the key is missing or unreadable."""
    if not data or ALLOW_LIST_KEY not in data:
        return None
    try:
        document = yaml.safe_load(data[ALLOW_LIST_KEY])
    except yaml.YAMLError:
        return None
    names = document.get("names") if isinstance(document, dict) else None
    if not isinstance(names, list):
        return None
    return sorted({str(name) for name in names})


def referenced_configmaps(source: DeviceConfiguration) -> set[str]:
    """ConfigMaps (same namespace) that a configuration reads."""
    names = set()
    if source.metrics and source.metrics.system and source.metrics.system.allow_list:
        names.add(source.metrics.system.allow_list.name)
    for config in (source.log_collection or {}).values():
        if config.syslog_config:
            names.add(config.syslog_config.name)
    return names

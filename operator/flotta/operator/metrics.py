"""Prometheus metrics of one operator instance (own registry, no globals)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "flotta_operator_reconciles", "Device reconciles", registry=self.registry
        )
        self.publishes = Counter(
            "flotta_operator_publishes",
            "Desired states acknowledged by the broker",
            registry=self.registry,
        )
        self.publish_errors = Counter(
            "flotta_operator_publish_errors",
            "Publishes that failed or were refused",
            registry=self.registry,
        )
        self.errors = Counter(
            "flotta_operator_errors", "Errors by kind", ["kind"], registry=self.registry
        )
        self.invalid_workloads = Gauge(
            "flotta_operator_invalid_workloads",
            "EdgeWorkloads that no device can run",
            registry=self.registry,
        )
        self.enrolments = Counter(
            "flotta_operator_enrolments", "Enrolment outcomes", ["outcome"], registry=self.registry
        )
        self.certificates = Counter(
            "flotta_operator_certificates",
            "Certificates issued, renewed and revoked",
            ["action"],
            registry=self.registry,
        )
        self.bridges_alive = Gauge(
            "flotta_operator_bridges_alive",
            "1 while a bridge replica renews its presence lease, else 0",
            registry=self.registry,
        )
        self.marked_unknown = Counter(
            "flotta_operator_devices_marked_unknown",
            "Online devices marked Unknown because no bridge was alive",
            registry=self.registry,
        )
        self.evictions = Counter(
            "flotta_operator_evictions",
            "Connections of revoked devices closed, with their sessions, on the broker",
            registry=self.registry,
        )

        self.rollout_phase = Gauge(
            "flotta_operator_rollout_phase",
            "1 for the phase each rollout (EdgeWorkload/<name>, EdgeDeviceSet/<name>) is in",
            ["namespace", "owner", "phase"],
            registry=self.registry,
        )
        self.rollout_batch = Gauge(
            "flotta_operator_rollout_batch",
            "The batch in progress of each rollout (the first is 1)",
            ["namespace", "owner"],
            registry=self.registry,
        )
        self.rollout_devices = Gauge(
            "flotta_operator_rollout_devices",
            "Devices of each rollout by state (updated, updating, failed, pending)",
            ["namespace", "owner", "state"],
            registry=self.registry,
        )
        self.rollout_events = Counter(
            "flotta_operator_rollout_events",
            "Rollout transitions (BatchStarted, BatchSucceeded, RolloutHalted, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.status_reports = Counter(
            "flotta_operator_status_reports",
            "Device status reports read while rollouts are under way, by result (changed, "
            "same, stale, invalid, unknown-device, rate-limited)",
            ["result"],
            registry=self.registry,
        )

    def queue_depth(self, name: str, depth: Callable[[], int]) -> None:
        gauge = Gauge(
            f"flotta_operator_{name}_depth",
            f"Entries waiting in the {name}",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(depth()))

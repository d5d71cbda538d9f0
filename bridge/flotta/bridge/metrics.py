"""Prometheus metrics of one bridge (own registry, so tests and replicas do not share)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "flotta_bridge_messages_total",
            "Device messages received, by kind",
            ["kind"],
            registry=r,
        )
        self.rejected = Counter(
            "flotta_bridge_rejected_total",
            "Device messages rejected, by reason",
            ["reason"],
            registry=r,
        )
        self.rejections_unreported = Counter(
            "flotta_bridge_rejections_unreported_total",
            "Rejected messages counted but not reported on NATS (their device's report budget "
            "was spent)",
            registry=r,
        )
        self.presence_failures = Counter(
            "flotta_bridge_presence_failures_total",
            "Presence lease renewals that failed (the operator marks devices Unknown when no "
            "bridge renews)",
            registry=r,
        )
        self.clears_seen = Counter(
            "flotta_bridge_clears_total",
            "Empty messages (clears of retained messages) taken and dropped",
            registry=r,
        )
        self.retained_cleared = Counter(
            "flotta_bridge_retained_cleared_total",
            "Retained messages devices left on their report topics, cleared by the bridge",
            registry=r,
        )
        self.clock_off = Counter(
            "flotta_bridge_device_clock_off_total",
            "Heartbeats whose time is more than 5 minutes away from the bridge's clock",
            registry=r,
        )
        self.kube_writes = Counter(
            "flotta_bridge_kube_writes_total",
            "EdgeDevice status writes, by kind (urgent, change, refresh) and result",
            ["kind", "result"],
            registry=r,
        )
        self.kube_events = Counter(
            "flotta_bridge_kube_events_total",
            "Device events turned into Kubernetes Events, by result",
            ["result"],
            registry=r,
        )
        self.nats_published = Counter(
            "flotta_bridge_nats_published_total",
            "JetStream publishes, by result",
            ["result"],
            registry=r,
        )
        self.receipts = Counter(
            "flotta_bridge_receipts_total",
            "Receipts for stored telemetry batches, by result (sent, failed, dropped: queue full)",
            ["result"],
            registry=r,
        )
        self.nats_latency = Histogram(
            "flotta_bridge_nats_publish_seconds",
            "Time from JetStream publish to its acknowledgement",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.kube_write_latency = Histogram(
            "flotta_bridge_kube_write_seconds",
            "Duration of one EdgeDevice status write",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.queue_depth = Gauge(
            "flotta_bridge_queue_depth", "Items waiting, by queue", ["queue"], registry=r
        )
        self.devices = Gauge("flotta_bridge_devices", "EdgeDevices known to the bridge", registry=r)

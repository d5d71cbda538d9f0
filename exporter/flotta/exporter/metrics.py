"""Prometheus metrics of one exporter (own registry, so tests and replicas do not share).

Every series has a ``sink`` label (``prometheus``, ``loki``, ``syslog``): the durable consumer
the sink reads with. Items are samples for metrics sinks and lines for logs sinks.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ExporterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.batches = Counter(
            "flotta_exporter_batches_total",
            "Device batches by outcome: sent (the sink accepted them, then acknowledged), "
            "dead_lettered (refused or undecodable)",
            ["sink", "outcome"],
            registry=r,
        )
        self.sent = Counter(
            "flotta_exporter_sent_items_total",
            "Samples or lines the sink accepted",
            ["sink"],
            registry=r,
        )
        self.too_old = Counter(
            "flotta_exporter_too_old_items_total",
            "Samples or lines the sink refused as too old, out of order or conflicting "
            "(counted and dropped, not retried)",
            ["sink"],
            registry=r,
        )
        self.refused = Counter(
            "flotta_exporter_refused_total",
            "Sends the sink refused as invalid (their batches go to the dead-letter subject)",
            ["sink"],
            registry=r,
        )
        self.retried = Counter(
            "flotta_exporter_retries_total",
            "Sends the sink could not take now (unreachable, 5xx, 429), tried again after a "
            "backoff",
            ["sink"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "flotta_exporter_dead_lettered_total",
            "Messages sent to the dead-letter subject, by reason (refused, undecodable)",
            ["sink", "reason"],
            registry=r,
        )
        self.lag = Gauge(
            "flotta_exporter_consumer_lag",
            "Messages of the stream the sink's durable consumer has not yet had acknowledged "
            "(pending plus in flight), as JetStream last reported",
            ["sink"],
            registry=r,
        )
        self.in_flight = Gauge(
            "flotta_exporter_in_flight_messages",
            "Messages this replica holds unacknowledged",
            ["sink"],
            registry=r,
        )
        self.send_latency = Histogram(
            "flotta_exporter_send_seconds",
            "Duration of one send to the sink (all its requests)",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.delay = Histogram(
            "flotta_exporter_delivery_delay_seconds",
            "Time from the message's arrival in JetStream to the sink's acceptance",
            ["sink"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )

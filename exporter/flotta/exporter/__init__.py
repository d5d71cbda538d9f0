"""The telemetry exporter: device metrics and logs from JetStream into Prometheus, Loki, syslog."""

"""What ``flotta dev up`` prints once the stack is ready: how to reach every part of it."""

from __future__ import annotations

from flotta.dev.stack.layout import LOOPBACK, Ports, StackLayout

DEVICE = "edge-local-0001"  # the real agent's device (flotta.dev.stack.up.LOCAL_AGENT_ID)
SAMPLE_COUNTER = 'counter_ticks_total{workload="counter"}'
DEVICE_CPU = (
    "100 * (1 - avg by (device) "
    f'(rate(node_cpu_seconds_total{{device="{DEVICE}",mode="idle"}}[5m])))'
)
SAMPLE_TICKS = '{workload="counter"} |= "tick"'


def telemetry_usage(layout: StackLayout, ports: Ports, *, syslog: bool = True) -> str:
    """How to query the device metrics in Prometheus and the logs in Loki (and syslog)."""
    prometheus = f"http://{LOOPBACK}:{ports.prometheus}"
    loki = f"http://{LOOPBACK}:{ports.loki}"
    messages = layout.syslog.resolve() / "messages.log"
    address = f"{LOOPBACK}:{ports.syslog}"
    syslog_text = f"""Syslog, the sample's logCollection target: rsyslogd on {address} (RFC 5424
over TCP), each message a line in {messages}:
  tail -n 5 {messages}
"""
    return f"""
Telemetry, fed from JetStream by the exporter: device metrics in Prometheus (PromQL), logs
in Loki (LogQL); labels namespace, device, workload, container:
  curl -sG {prometheus}/api/v1/query --data-urlencode 'query={SAMPLE_COUNTER}'
  curl -sG {prometheus}/api/v1/query --data-urlencode 'query={DEVICE_CPU}'  # CPU busy, %
  curl -sG {loki}/loki/api/v1/query_range --data-urlencode 'query={SAMPLE_TICKS}' \\
    --data-urlencode limit=5
Prometheus web UI: {prometheus}/graph (the same PromQL queries). Loki has no web UI of its
own (Grafana's Explore is one); the stack's Loki is a stand-in for its API (flotta dev loki,
no Loki is packaged for Debian), keeping what it is sent in {layout.loki.resolve()}.
{syslog_text if syslog else ""}"""


def usage(layout: StackLayout, ports: Ports, *, telemetry: bool = True, syslog: bool = True) -> str:
    root = layout.root.resolve()
    clients = root / "pki" / "clients"
    return f"""
Flotta is running on loopback. Endpoints: {root / "endpoints.json"}

Kubernetes (local API, kubectl works as with a cluster):
  export KUBECONFIG={root / "kubeconfig"}
  kubectl get flotta -A                 # every Flotta resource
  kubectl get edgedevices -A -w         # devices (short name: ed)
  kubectl get edsr -A                   # enrolment requests
  kubectl apply -f deploy/samples/edgeworkload.yaml

NATS JetStream (events and telemetry, CloudEvents; TLS, the observer certificate reads):
  flotta dev tail --state-dir {layout.root} 'flotta.device.>'

Device topics over MQTT, read-only, with the observer certificate issued for you:
  mosquitto_sub -V mqttv5 -h {LOOPBACK} -p {ports.mqtt} -i observer-dev \\
    --cafile {root / "pki" / "ca.crt"} \\
    --cert {clients / "observer-dev.crt"} --key {clients / "observer-dev.key"} \\
    -t 'flotta/devices/+/status' -t 'flotta/devices/+/events' -v

{telemetry_usage(layout, ports, syslog=syslog) if telemetry else ""}
Fleet CA (development): {root / "pki" / "ca.crt"} and {root / "pki" / "ca.key"}
Logs: {root / "logs"}
"""

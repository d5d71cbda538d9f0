"""What ``flotta dev up`` prints once the stack is ready: how to reach every part of it."""

from __future__ import annotations

from flotta.dev.stack.layout import LOOPBACK, Ports, StackLayout


def usage(layout: StackLayout, ports: Ports) -> str:
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

Fleet CA (development): {root / "pki" / "ca.crt"} and {root / "pki" / "ca.key"}
Logs: {root / "logs"}
"""

"""flotta.bridge: device topics -> EdgeDevice status (written sparingly) and NATS JetStream.

Pure decision logic (no I/O): :mod:`hardware`, :mod:`device_status`, :mod:`liveness`,
:mod:`rate_limit`, :mod:`coalescer`, :mod:`event_limit`, :mod:`outbound`, :mod:`streams`.
Adapters: :mod:`mqtt_intake` (MQTT), :mod:`publishing` (NATS), :mod:`kube` (Kubernetes API).
"""

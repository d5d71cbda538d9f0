"""flotta.bridge: device topics -> EdgeDevice status (written sparingly) and NATS JetStream.

Pure decision logic (no I/O): :mod:`hardware`, :mod:`devicestatus`, :mod:`liveness`,
:mod:`ratelimit`, :mod:`coalescer`, :mod:`eventlimit`, :mod:`outbound`, :mod:`streams`.
Adapters: :mod:`intake` (MQTT), :mod:`publishing` (NATS), :mod:`kube` (Kubernetes API).
"""

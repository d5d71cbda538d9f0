"""Shared fixtures. Server fixtures live in ``tests/fixtures/``, one module per kind of
server, registered here."""

pytest_plugins = [
    "tests.fixtures.brokers",  # fleet PKI, Mosquitto (mTLS + ACL), nats-server (JetStream)
    "tests.fixtures.kube",  # the local Kubernetes API
    "tests.fixtures.podman",  # isolated Podman with a locally built busybox image
]

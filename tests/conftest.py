"""Shared fixtures. Server fixtures (Mosquitto, nats-server, Podman, local Kubernetes API)
live in ``tests/fixtures/`` and are registered here."""

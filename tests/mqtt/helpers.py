"""Settings for flotta.mqtt clients against the test broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotta.mqtt import BackoffPolicy, MqttSettings, TlsSettings
from tests.fixtures.brokers import ClientCredentials, TestBroker

FAST_BACKOFF = BackoffPolicy(base=0.05, cap=0.5, stable_after=5.0)


def settings_for(
    broker: TestBroker,
    credentials: ClientCredentials | None,
    client_id: str,
    *,
    ca: Path | None = None,
    **overrides: Any,
) -> MqttSettings:
    tls = TlsSettings(
        ca_file=ca or broker.ca_path,
        cert_file=credentials.cert if credentials else None,
        key_file=credentials.key if credentials else None,
    )
    options: dict[str, Any] = {
        "keepalive": 5,
        "connect_timeout": 5.0,
        "backoff": FAST_BACKOFF,
    }
    options.update(overrides)
    return MqttSettings(broker.host, broker.port, client_id, tls, **options)

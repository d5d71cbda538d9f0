"""Settings for flotta.mqtt clients against the test broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotta.mqtt import MqttSettings, TlsFiles
from tests.fixtures.brokers import ClientCredentials, TestBroker

FAST_RECONNECT: dict[str, float] = {
    "reconnect_base": 0.05,
    "reconnect_cap": 0.5,
    "reconnect_stable_after": 5.0,
}


def settings_for(
    broker: TestBroker,
    credentials: ClientCredentials | None,
    client_id: str,
    *,
    ca: Path | None = None,
    **overrides: Any,
) -> MqttSettings:
    tls = TlsFiles(
        ca=ca or broker.ca_path,
        cert=credentials.cert if credentials else None,
        key=credentials.key if credentials else None,
    )
    options: dict[str, Any] = {
        "keepalive": 5,
        "connect_timeout": 5.0,
        **FAST_RECONNECT,
    }
    options.update(overrides)
    port = broker.port_for(credentials.identity) if credentials else broker.port
    return MqttSettings(broker.host, port, client_id, tls, **options)

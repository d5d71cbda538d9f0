"""Connection settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = self.check_hostname
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    tls: TlsFiles | None = None
    keepalive: int = 30
    clean_start: bool = False
    session_expiry: int = 7 * 24 * 3600  # a device offline for a week still finds its queue
    receive_maximum: int = 100  # unacknowledged messages the broker may have in flight to us
    max_inflight: int = 1000  # our unacknowledged publishes
    incoming_queue: int = 1000
    will: Will | None = None
    reconnect_base: float = 0.5
    reconnect_cap: float = 60.0
    connect_timeout: float = 15.0

    @property
    def target(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

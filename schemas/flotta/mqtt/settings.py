"""Connection settings of the MQTT client and the TLS context built from them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from flotta.backoff import BackoffPolicy

SESSION_EXPIRY_DEFAULT = 7 * 24 * 3600  # seconds the broker keeps a session of a gone client


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path | None = None  # client certificate (mutual TLS); None: no client certificate
    key: Path | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")

    def context(self) -> ssl.SSLContext:
        """A client context: TLS >= 1.2, server verified against ``ca_file``.

        Built again whenever the files change (``tls_context.py``), so a renewed certificate on
        disk is picked up at the next attempt. Raises ``OSError``/``ssl.SSLError`` for missing
        or broken files.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=str(self.ca))
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(str(self.cert), str(self.key))
        context.check_hostname = self.check_hostname
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
    keepalive: int = 30  # seconds
    clean_start: bool = False  # False: persistent session, resumed on reconnect
    session_expiry: int = SESSION_EXPIRY_DEFAULT  # seconds; 0 ends the session on disconnect
    receive_maximum: int = 100  # unacked QoS>0 messages the broker may have in flight to us
    incoming_queue: int = 1000  # incoming messages waiting for the consumer
    max_inflight: int = 1000  # our unacked QoS>0 publishes (lowered to the broker's maximum)
    will: Will | None = None
    username: str | None = None  # with client certificates the broker takes the CN instead
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0  # seconds for TCP + TLS + CONNACK
    close_timeout: float = 2.0  # seconds to wait for DISCONNECT to be written on close()
    misc_interval: float = 1.0  # seconds between paho housekeeping calls (keepalive, retries)
    reconnect_base: float = 1.0  # seconds: upper bound of the first reconnect delay
    reconnect_cap: float = 60.0  # seconds: no reconnect delay is longer
    reconnect_stable_after: float = 30.0  # seconds connected before the delays start over

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if not 1 <= self.receive_maximum <= 65535:
            raise ValueError(f"receive_maximum {self.receive_maximum} must be in 1..65535")
        if self.incoming_queue < self.receive_maximum:
            # Every unacked QoS>0 message the broker may send must fit in the queue.
            raise ValueError(
                f"incoming_queue {self.incoming_queue} must be at least receive_maximum "
                f"{self.receive_maximum}"
            )
        if self.keepalive < 0 or self.session_expiry < 0 or self.max_inflight < 1:
            raise ValueError("keepalive and session_expiry must be >= 0, max_inflight >= 1")
        self.backoff_policy()  # refuses nonsense reconnect delays now, not at the first outage

    @property
    def target(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def backoff_policy(self) -> BackoffPolicy:
        return BackoffPolicy(self.reconnect_base, self.reconnect_cap, self.reconnect_stable_after)

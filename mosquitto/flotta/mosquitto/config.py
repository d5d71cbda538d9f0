"""Render ``mosquitto.conf`` (Mosquitto 2.0) from settings: a pure function, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from flotta.schemas.topics import ENROLMENT_PORT, FLEET_PORT, SERVICES_PORT


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """Resource limits; every one bounds memory or disk that a client could fill."""

    max_packet_size: int = 1024 * 1024  # a whole MQTT packet; larger ones disconnect the client
    # QoS 1/2 messages in flight per client, each way: the broker's outgoing window (a client
    # may ask for less: the agent asks for 20) and the Receive Maximum its CONNACK announces.
    # The operator publishes a fleet's desired states and the bridge takes in every device's
    # reports through one session each; at 20 their throughput was bound by round trips.
    max_inflight_messages: int = 1000
    # Per client, beyond in-flight. Devices queue little; the bridge and the operator receive from
    # every device, and a short outage of theirs must not drop a fleet's reports.
    max_queued_messages: int = 100_000
    max_queued_bytes: int = 128 * 1024 * 1024
    max_keepalive: int = 600  # MQTT v5 clients asking for more are told to use this
    max_connections: int = -1  # -1: unlimited (the OS file limit applies)
    # Sessions of devices offline for longer are dropped; devices re-subscribe on reconnect.
    persistent_client_expiration: str = "30d"


Role = Literal["fleet", "enrolment"]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything one broker's configuration depends on.

    The fleet broker (``role="fleet"``) has the device-facing listener, where Mosquitto makes
    the certificate's CN the client id (``use_username_as_clientid``): no certificate can take
    over another client's session. Its services listener, for the operator and the bridge
    (several connections per identity, so they choose their client ids), must be reachable by
    the control plane alone. The enrolment broker (``role="enrolment"``) is a Mosquitto of its
    own: bootstrap clients, who share a certificate, choose their client ids there, and client
    ids are one namespace per broker, so they reach no session of the fleet's.
    """

    cafile: Path
    certfile: Path
    keyfile: Path
    crlfile: Path
    acl_file: Path
    persistence_dir: Path
    port: int = FLEET_PORT
    bind_address: str = "0.0.0.0"  # noqa: S104 - the production broker serves the fleet
    services_port: int | None = SERVICES_PORT  # fleet broker only; None: no such listener
    services_bind_address: str = "0.0.0.0"  # noqa: S104 - a NetworkPolicy keeps it internal
    role: Role = "fleet"
    log_dest: str = "stderr"
    run_as_root: bool = False  # test brokers read keys owned by root
    autosave_interval: int = 60
    limits: BrokerLimits = field(default_factory=BrokerLimits)


def render_config(settings: BrokerSettings) -> str:
    """The ``mosquitto.conf`` text for the settings."""
    limits = settings.limits
    lines = [
        "# Flotta broker configuration (Mosquitto 2.0).",
        "# Rendered by flotta.mosquitto.config; regenerate with 'flotta broker render'.",
        "",
        f"# The {settings.role} broker.",
        "# Identity: the client certificate's CN is the MQTT username; nothing else gets in.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {settings.acl_file}",
        "allow_zero_length_clientid false",
        "# A retained message is delivered only while its publisher may still write its topic.",
        "check_retain_source true",
        "",
        "# Persistence: retained desired state and sessions survive restarts.",
        "persistence true",
        f"persistence_location {settings.persistence_dir}/",
        f"autosave_interval {settings.autosave_interval}",
        f"persistent_client_expiration {limits.persistent_client_expiration}",
        "",
        "# Limits.",
        f"max_packet_size {limits.max_packet_size}",
        f"max_inflight_messages {limits.max_inflight_messages}",
        f"max_queued_messages {limits.max_queued_messages}",
        f"max_queued_bytes {limits.max_queued_bytes}",
        f"max_keepalive {limits.max_keepalive}",
        "",
        "# MQTT is request/response (PUBLISH, PUBACK): with Nagle's algorithm a small packet waits",
        "# for the peer's delayed TCP ACK, up to 40 ms per hop on Linux.",
        "set_tcp_nodelay true",
        "",
        "# Logging.",
        f"log_dest {settings.log_dest}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp true",
        "",
    ]
    if settings.run_as_root:
        lines += ["# Test broker: stay root to read keys owned by root.", "user root", ""]
    if settings.role == "enrolment":
        lines += _listener(
            settings,
            settings.port,
            settings.bind_address,
            "Enrolment: bootstrap certificates, each client choosing its id (its device id).",
            bind_client_id=False,
        )
    else:
        lines += _listener(
            settings,
            settings.port,
            settings.bind_address,
            "Devices and observers: the certificate's CN is the client id, whatever the client "
            "asks for.",
            bind_client_id=True,
        )
        if settings.services_port is not None:
            lines += _listener(
                settings,
                settings.services_port,
                settings.services_bind_address,
                "The operator and the bridge (client ids they choose): reachable by the "
                "control plane alone.",
                bind_client_id=False,
            )
    return "\n".join(lines)


def _listener(
    settings: BrokerSettings, port: int, bind_address: str, purpose: str, *, bind_client_id: bool
) -> list[str]:
    lines = [
        f"# {purpose}",
        f"listener {port} {bind_address}",
        "protocol mqtt",
        f"max_connections {settings.limits.max_connections}",
        f"cafile {settings.cafile}",
        f"certfile {settings.certfile}",
        "# Started as root, mosquitto drops to user 'mosquitto': it must be able to read this key.",
        f"keyfile {settings.keyfile}",
        "# Revoked certificates; re-read on SIGHUP (new connections only).",
        f"crlfile {settings.crlfile}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
    ]
    if bind_client_id:
        lines.append("use_username_as_clientid true")
    return [*lines, ""]


def production_settings(etc_dir: Path = Path("/etc/mosquitto/flotta")) -> BrokerSettings:
    """The settings of the committed example configuration (``mosquitto/mosquitto.conf``)."""
    return BrokerSettings(
        cafile=etc_dir / "ca.crt",
        certfile=etc_dir / "server.crt",
        keyfile=etc_dir / "server.key",
        crlfile=etc_dir / "crl.pem",
        acl_file=etc_dir / "acl",
        persistence_dir=Path("/var/lib/mosquitto"),
    )


def enrolment_settings(
    fleet: BrokerSettings, *, port: int = ENROLMENT_PORT, bind_address: str | None = None
) -> BrokerSettings:
    """The enrolment broker beside a fleet broker: the same certificates, its own ACL, store
    and port."""
    return replace(
        fleet,
        role="enrolment",
        port=port,
        bind_address=fleet.bind_address if bind_address is None else bind_address,
        services_port=None,
        acl_file=fleet.acl_file.with_name("enrolment-acl"),
        persistence_dir=fleet.persistence_dir.with_name(fleet.persistence_dir.name + "-enrolment"),
    )

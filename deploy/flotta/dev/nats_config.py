"""nats-server's configuration for the one-machine stack: TLS with client certificates from the
fleet CA, each certificate's subject mapped to a user (``verify_and_map``), and what each user
may do. Pure: a function from settings to the file's text.

- The bridge publishes device messages and rejections, and manages its streams.
- An observer reads: it subscribes to ``flotta.>``, creates and reads consumers, acknowledges;
  it cannot publish a device message, nor delete a stream or another's consumer.
- The exporter reads as an observer does (pull consumers), and keeps its dead-letter stream:
  it creates and updates that one stream and publishes there, nowhere else.
- Nobody else gets in: without a certificate of the fleet CA the TLS handshake fails, and a
  certificate whose subject is not listed is refused.

A cluster runs NATS of its own (docs/deploying.md shows the same permissions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BRIDGE_PUBLISH = ("flotta.>", "$JS.API.>")
OBSERVER_PUBLISH = (
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.>",
    "$JS.API.CONSUMER.CREATE.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
    "$JS.API.CONSUMER.INFO.>",
    "$JS.API.CONSUMER.MSG.NEXT.>",
    "$JS.ACK.>",
    "$JS.FC.>",
)
REPLIES = ("_INBOX.>",)
DEAD_LETTER_STREAM = "FLOTTA_EXPORTER_DEADLETTER"  # flotta.exporter.jetstream's
EXPORTER_PUBLISH = (
    *OBSERVER_PUBLISH,
    f"$JS.API.STREAM.CREATE.{DEAD_LETTER_STREAM}",
    f"$JS.API.STREAM.UPDATE.{DEAD_LETTER_STREAM}",
    "flotta.exporter.deadletter.>",
)


@dataclass(frozen=True, slots=True)
class NatsUser:
    subject: str  # the certificate's subject as nats-server spells it, e.g. CN=internal:bridge
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NatsTls:
    cert: Path
    key: Path
    ca: Path


def bridge_user(common_name: str) -> NatsUser:
    return NatsUser(f"CN={common_name}", BRIDGE_PUBLISH, REPLIES)


def observer_user(common_name: str) -> NatsUser:
    return NatsUser(f"CN={common_name}", OBSERVER_PUBLISH, ("flotta.>", *REPLIES))


def exporter_user(common_name: str) -> NatsUser:
    return NatsUser(f"CN={common_name}", EXPORTER_PUBLISH, REPLIES)


def render_nats_config(
    *, host: str, port: int, store_dir: Path, tls: NatsTls, users: Sequence[NatsUser]
) -> str:
    def strings(values: Sequence[str]) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    lines = [
        "# nats-server for the Flotta stack (flotta.dev.nats_config): TLS, certificates mapped",
        "# to users, least privilege per user.",
        f"listen: {json.dumps(f'{host}:{port}')}",
        "http_port: 0",
        "jetstream {",
        f"  store_dir: {json.dumps(str(store_dir))}",
        "}",
        "tls {",
        f"  cert_file: {json.dumps(str(tls.cert))}",
        f"  key_file: {json.dumps(str(tls.key))}",
        f"  ca_file: {json.dumps(str(tls.ca))}",
        "  verify_and_map: true",
        "  timeout: 5",
        "}",
        "authorization {",
        "  users = [",
    ]
    for user in users:
        lines += [
            "    {",
            f"      user: {json.dumps(user.subject)}",
            "      permissions: {",
            f"        publish: {{ allow: {strings(user.publish)} }}",
            f"        subscribe: {{ allow: {strings(user.subscribe)} }}",
            "      }",
            "    }",
        ]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)

"""A read-only NATS connection to the stack's JetStream, with the observer certificate that
``flotta dev up`` issued (its NATS admits certificates it maps to users, nothing else)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from flotta.mqtt import TlsFiles

OBSERVER_STEM = "observer-dev"


def observer_tls(state_dir: Path) -> ssl.SSLContext:
    pki = state_dir / "pki"
    clients = pki / "clients"
    return TlsFiles(
        pki / "ca.crt", clients / f"{OBSERVER_STEM}.crt", clients / f"{OBSERVER_STEM}.key"
    ).context()


async def observer_connection(state_dir: Path, url: str | None = None, **options: Any) -> Client:
    if url is None:
        url = json.loads((state_dir / "endpoints.json").read_text())["nats"]
    return await nats.connect(url, tls=observer_tls(state_dir), **options)

"""A NATS connection as the bridge and the exporter hold one: reconnecting for ever (every
0.5 s) and logging its errors, losses and returns; and a JetStream stream created, or updated
to its configuration, at start."""

from __future__ import annotations

import logging
import ssl

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

logger = logging.getLogger(__name__)

RECONNECT_WAIT = 0.5  # seconds between reconnection attempts


async def connect(url: str, *, name: str, tls: ssl.SSLContext | None = None) -> NatsClient:
    """Connect to ``url`` (a client certificate in ``tls``, for a NATS that maps it to a
    user); the client reconnects until it is closed."""

    async def on_error(exc: Exception) -> None:
        logger.warning("NATS error: %s", exc)

    async def on_disconnected() -> None:
        logger.warning("NATS disconnected from %s", url)

    async def on_reconnected() -> None:
        logger.info("NATS reconnected to %s", url)

    return await nats.connect(
        url,
        tls=tls,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it to ``config`` if it exists."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        logger.info("created stream %s for %s", config.name, ", ".join(config.subjects or ()))
    else:
        await js.update_stream(config)

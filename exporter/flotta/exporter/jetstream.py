"""NATS JetStream adapter of the exporter: connect, the durable pull consumer of each sink,
the dead-letter stream and its publishes.

One durable consumer per sink on ``FLOTTA_TELEMETRY`` (``flotta-exporter-{sink}``), shared by
every replica: JetStream hands each pull the next messages of the stream, so replicas split
the load, and what a replica fetched but never acknowledged (it died) is handed out again
after ``ack_wait``. Acknowledgement is explicit, redelivery unlimited: a message leaves the
consumer only when its sink accepted it or it was dead-lettered.

Dead letters: stream ``FLOTTA_EXPORTER_DEADLETTER`` on ``flotta.exporter.deadletter.>``; each
is the original message's bytes on ``flotta.exporter.deadletter.{sink}`` with headers naming
the reason, the original subject and stream sequence, and ``Nats-Msg-Id``
``{sink}:{stream sequence}`` so a message dead-lettered twice (by two replicas, or again after
a crash) is stored once.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from flotta.nats_connection import connect, ensure_stream

logger = logging.getLogger(__name__)

TELEMETRY_STREAM = "FLOTTA_TELEMETRY"
DEAD_LETTER_STREAM = "FLOTTA_EXPORTER_DEADLETTER"
DEAD_LETTER_PREFIX = "flotta.exporter.deadletter"
MSG_ID_HEADER = "Nats-Msg-Id"
REASON_HEADER = "Flotta-Reason"
SUBJECT_HEADER = "Flotta-Subject"
SEQUENCE_HEADER = "Flotta-Stream-Sequence"
ORIGINAL_ID_HEADER = "Flotta-Msg-Id"
MAX_REASON = 1024
MiB = 1024 * 1024
FLUSH_TIMEOUT = 2  # seconds (nats-py takes an int)


def dead_letter_subject(sink: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{sink}"


def durable_name(sink: str) -> str:
    return f"flotta-exporter-{sink}"


@dataclass(frozen=True, slots=True)
class DeadLetterSettings:
    max_age: float = 7 * 24 * 3600.0  # seconds
    max_bytes: int = 256 * MiB
    duplicate_window: float = 20 * 60.0


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    sink: str
    filter_subject: str  # flotta.device.*.*.metrics or ...logs
    ack_wait: float = 30.0  # seconds before an unacknowledged message is handed out again
    max_ack_pending: int = 4096  # messages in flight on all replicas together


class JetStream:
    def __init__(self, url: str, *, tls: ssl.SSLContext | None = None, name: str) -> None:
        self.url = url
        self.tls = tls
        self.name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect(self) -> None:
        self._nc = await connect(self.url, name=self.name, tls=self.tls)
        self._js = self._nc.jetstream()

    async def close(self) -> None:
        """Flush what was sent (acknowledgements, naks) and close. No drain: draining waits
        for pull subscriptions whose requests the server never answers once the fetch loops
        are gone."""
        if self._nc is None:
            return
        nc, self._nc, self._js = self._nc, None, None
        try:
            if nc.is_connected:
                await nc.flush(timeout=FLUSH_TIMEOUT)
        except (NatsError, OSError, TimeoutError) as exc:
            logger.warning("NATS flush at close failed: %s", exc)
        try:
            await nc.close()
        except OSError as exc:  # nats-py flushes into a lost connection
            logger.warning("NATS close failed: %s", exc)

    def jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("JetStream.connect() was not awaited")
        return self._js

    async def ensure_dead_letter_stream(self, settings: DeadLetterSettings) -> None:
        js = self.jetstream()
        config = StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=[f"{DEAD_LETTER_PREFIX}.>"],
            max_age=settings.max_age,
            max_bytes=settings.max_bytes,
            duplicate_window=settings.duplicate_window,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
        )
        await ensure_stream(js, config)

    async def subscribe(self, spec: ConsumerSpec) -> JetStreamContext.PullSubscription:
        """Create (or update) the sink's durable consumer and bind to it; raises NotFoundError
        while the telemetry stream does not exist yet (the bridge creates it)."""
        js = self.jetstream()
        durable = durable_name(spec.sink)
        try:
            await js.add_consumer(
                TELEMETRY_STREAM,
                ConsumerConfig(
                    durable_name=durable,
                    description=f"flotta exporter: {spec.filter_subject} into {spec.sink}",
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=spec.ack_wait,
                    max_deliver=-1,
                    filter_subject=spec.filter_subject,
                    max_ack_pending=spec.max_ack_pending,
                ),
            )
        except BadRequestError as exc:
            # A setting JetStream cannot change on an existing consumer (its deliver policy,
            # say): use the consumer as it is rather than stop exporting.
            await js.consumer_info(TELEMETRY_STREAM, durable)
            logger.warning("consumer %s kept as it is, not updated: %s", durable, exc)
        return await js.pull_subscribe_bind(durable=durable, stream=TELEMETRY_STREAM)

    async def dead_letter(self, sink: str, msg: Msg, reason: str) -> None:
        """Store the message on the sink's dead-letter subject (waits for JetStream's
        acknowledgement; raises when it could not be stored)."""
        sequence = msg.metadata.sequence.stream
        headers = {
            MSG_ID_HEADER: f"{sink}:{sequence}",
            REASON_HEADER: _header_text(reason),
            SUBJECT_HEADER: msg.subject,
            SEQUENCE_HEADER: str(sequence),
        }
        original = (msg.headers or {}).get(MSG_ID_HEADER)
        if original:
            headers[ORIGINAL_ID_HEADER] = original
        await self.jetstream().publish(
            dead_letter_subject(sink), msg.data, headers=headers, stream=DEAD_LETTER_STREAM
        )


def _header_text(text: str) -> str:
    """One line of at most MAX_REASON characters (a header value cannot hold a line break)."""
    return " ".join(text.split())[:MAX_REASON]

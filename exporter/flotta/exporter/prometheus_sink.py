"""Prometheus remote write sink: device metrics batches -> one receiver over HTTP(S).

Answers, per the remote write 1.0 spec and what Prometheus does:

* 2xx: ``Accepted``.
* A refusal of samples as too old, out of order or conflicting (Prometheus 2.x answers
  ``400 out of order sample``, ``400 out of bounds``, ``400 duplicate sample for timestamp``,
  and with an out-of-order window ``500 too old sample``; in every case the whole request is
  rolled back): the request is split to find the refused samples, which are counted in
  ``Accepted.too_old`` and dropped, and the rest is sent again. Within one series whether a
  sample is refused as too old depends only on its time (older than the series' newest
  sample and outside the window), so once one sample of a series is refused, that series'
  older samples in the request are counted without being sent; splitting costs about
  ``log2(samples)`` requests per series that has too-old samples.
* 429, other 5xx, a timeout or a connection error: ``Retry`` (``Retry-After`` honoured).
* Other 4xx: ``Refused`` (the batches are dead-lettered).

A send covers the batches' samples in requests of at most ``request_num_samples`` samples,
sent one after the other; a ``Retry`` in the middle sends them all again later, which
Prometheus takes as identical samples stored once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from flotta.exporter import write_requests
from flotta.exporter.retry_after import retry_after as parse_retry_after
from flotta.exporter.routing import Receiver
from flotta.exporter.sink import Accepted, DeviceBatch, Refused, Retry, SinkOutcome
from flotta.exporter.write_requests import InvalidBatchError, Series
from flotta.schemas.wire.telemetry import MetricsBatch

logger = logging.getLogger(__name__)

NAME = "prometheus"
TOO_OLD_MARKS = (
    "too old sample",
    "out of order sample",
    "out of bounds",
    "duplicate sample for timestamp",
)
MAX_BODY = 512  # characters of a receiver's answer kept in a reason


@dataclass(frozen=True, slots=True)
class Answer:
    """How a receiver answered one request."""

    kind: str  # "ok", "too_old", "retry", "refused"
    reason: str = ""
    after: float | None = None


def classify(status: int, body: str, retry_after: str | None = None) -> Answer:
    """Pure: an HTTP answer of a remote-write receiver as the sink reads it."""
    if 200 <= status < 300:
        return Answer("ok")
    text = " ".join(body.split())[:MAX_BODY]
    reason = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    lowered = text.lower()
    if status in (400, 500) and any(mark in lowered for mark in TOO_OLD_MARKS):
        return Answer("too_old", reason)
    if status == 429 or status >= 500:
        # A date already past (0): no wait of its own, the backoff decides.
        return Answer("retry", reason, parse_retry_after(retry_after) or None)
    return Answer("refused", reason)


class RemoteWriteSink:
    """One receiver. Not safe for concurrent sends (the exporter sends to a receiver from one
    task at a time, which keeps each device's samples in order)."""

    def __init__(self, receiver: Receiver, *, name: str = NAME) -> None:
        self.receiver = receiver
        self._name = name
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self._name

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            receiver = self.receiver
            context: ssl.SSLContext | bool = True
            if receiver.ca_pem is not None:
                context = ssl.create_default_context(cadata=receiver.ca_pem)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=4),
                timeout=aiohttp.ClientTimeout(total=receiver.timeout_seconds),
                headers=write_requests.HEADERS,
            )
        return self._session

    async def send(self, batches: Sequence[DeviceBatch[MetricsBatch]]) -> SinkOutcome:
        if self.receiver.unavailable is not None:
            return Retry(self.receiver.unavailable)
        try:
            series = write_requests.series_of(batches)
        except InvalidBatchError as exc:
            return Refused(str(exc))
        accepted = too_old = 0
        for request in write_requests.chunks(series, self.receiver.request_num_samples):
            outcome = await self._send_request(request)
            if not isinstance(outcome, Accepted):
                return outcome
            accepted += outcome.items
            too_old += outcome.too_old
        return Accepted(accepted, too_old)

    async def _send_request(self, request: list[Series]) -> SinkOutcome:
        answer = await self._post(request)
        if answer.kind == "ok":
            return Accepted(write_requests.sample_count(request))
        if answer.kind == "too_old":
            return await self._split(request)
        if answer.kind == "retry":
            return Retry(f"{self.receiver.url}: {answer.reason}", answer.after)
        return Refused(f"{self.receiver.url}: {answer.reason}")

    async def _post(self, request: list[Series]) -> Answer:
        body = write_requests.encode(request)
        try:
            async with self._client().post(self.receiver.url, data=body) as response:
                if 200 <= response.status < 300:
                    await response.release()
                    return Answer("ok")
                text = await response.text(errors="replace")
                return classify(response.status, text, response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Answer("retry", f"{type(exc).__name__}: {exc}")

    async def _split(self, request: list[Series]) -> SinkOutcome:
        """Send what the receiver takes of a request it refused for too-old samples."""
        accepted = 0
        refused_before: dict[tuple[tuple[str, str], ...], int] = {}  # series -> refused time
        pending: list[list[Series]] = [request]
        while pending:
            part = pending.pop()
            part = _prune(part, refused_before)
            pruned = write_requests.sample_count(part)
            if not part:
                continue
            answer = await self._post(part)
            if answer.kind == "ok":
                accepted += pruned
            elif answer.kind == "retry":
                return Retry(f"{self.receiver.url}: {answer.reason}", answer.after)
            elif answer.kind == "refused":
                return Refused(f"{self.receiver.url}: {answer.reason}")
            elif pruned == 1:
                # Counted below. A conflict (another value at the same time) says nothing
                # about the series' older samples; an age refusal does.
                if "duplicate" not in answer.reason:
                    one = part[0]
                    time = one.samples[0][0]
                    refused_before[one.labels] = max(refused_before.get(one.labels, time), time)
            else:
                # Newest first (popped first): a refusal there prunes the older part.
                pending.extend(_halves(part))
            await asyncio.sleep(0)
        # Refused, or pruned after a refusal: too old.
        total = write_requests.sample_count(request)
        return Accepted(accepted, total - accepted)


def _halves(part: list[Series]) -> list[list[Series]]:
    """Two smaller requests, the one with the newer samples last."""
    if len(part) > 1:
        middle = len(part) // 2
        return [part[:middle], part[middle:]]
    one = part[0]
    middle = len(one.samples) // 2
    return [[Series(one.labels, one.samples[:middle])], [Series(one.labels, one.samples[middle:])]]


def _prune(
    part: list[Series], refused_before: dict[tuple[tuple[str, str], ...], int]
) -> list[Series]:
    if not refused_before:
        return part
    kept: list[Series] = []
    for one in part:
        limit = refused_before.get(one.labels)
        if limit is None:
            kept.append(one)
            continue
        samples = [sample for sample in one.samples if sample[0] > limit]
        if samples:
            kept.append(Series(one.labels, samples))
    return kept

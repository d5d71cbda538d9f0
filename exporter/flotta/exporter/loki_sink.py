"""Device logs into Loki through its push API (``POST /loki/api/v1/push``, JSON).

Streams: one per ``namespace``, ``device``, ``workload``, ``container`` and ``stream``
(stdout, stderr, system), the label names metrics use; a label with an empty value is left
out. Entries keep the device's timestamps (nanoseconds) and text; within one push a stream's
entries are in time order (a stable sort, so lines of the same instant keep the device's
order), and pushes leave in the order of the batches.

Loki's answers, as Loki 2.4 and later give them:

* ``204``: stored. Loki also drops, silently, an entry equal in timestamp and text to the
  last one of its stream, and queries return entries equal in both once: a batch delivered
  twice (a retried push, a redelivered JetStream message) is recognised by its entries
  themselves, whose timestamps and text the device fixed when it buffered them.
* ``400`` naming entries outside the time Loki accepts, because they are older than
  ``reject_old_samples_max_age`` ("has timestamp too old"), behind the stream's newest entry
  by more than ``max_chunk_age / 2`` with ``unordered_writes`` ("entry too far behind"),
  older than it without ("entry out of order"), or ahead of Loki's clock by more than
  ``creation_grace_period`` ("has timestamp too new"): Loki stored the other entries of the
  push, so this is ``Accepted`` with those entries counted as ``too_old``. The count is
  Loki's ("total ignored: N out of M"), or the entries before the cutoff Loki names, or
  after Loki's clock plus ``creation_grace_seconds``; Loki reports only one stream's
  refusals per push, so when several streams of a push had some the count is a lower bound.
* ``429``, ``408``, ``5xx``, a connection that fails or a timeout: ``Retry`` (with
  ``Retry-After`` when the answer has one).
* any other ``4xx``: ``Refused`` with Loki's message.

A request carries at most ``max_request_bytes`` of entries; larger sends are split into
several pushes, and a failure of a later one retries the whole send (what the earlier ones
stored comes again, and is recognised as above).
"""

from __future__ import annotations

import bisect
import re
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import msgspec

from flotta.exporter.retry_after import retry_after
from flotta.exporter.sink import Accepted, DeviceBatch, Refused, Retry, SinkOutcome
from flotta.schemas.wire.telemetry import LogsBatch

PUSH_PATH = "/loki/api/v1/push"
MiB = 1024 * 1024
REASON_CHARS = 2000  # of Loki's message in a Retry or Refused reason
ANSWER_BYTES = 256 * 1024  # of Loki's answer read (its count of refusals comes last)
ENTRY_OVERHEAD = 32  # JSON around one entry: ["1700000000000000000","..."],
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Labels = tuple[tuple[str, str], ...]
Entry = tuple[int, str]  # nanoseconds since the epoch, the line


@dataclass(frozen=True, slots=True)
class LokiSettings:
    url: str
    """Loki's base URL (``http://loki:3100``), or the push URL itself."""
    tenant: str = ""
    """``X-Scope-OrgID`` for a Loki with ``auth_enabled``; empty: none sent."""
    timeout_seconds: float = 10.0
    ca_file: str = ""
    """For https: the CA certificate(s) to verify Loki with; empty: the system's."""
    max_request_bytes: int = 1 * MiB
    """Entries per push, in bytes (Loki's default burst is 6 MiB per tenant)."""
    creation_grace_seconds: float = 600.0
    """Loki's ``creation_grace_period``: to count entries refused as too new."""

    @property
    def push_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith(PUSH_PATH) else base + PUSH_PATH


@dataclass(frozen=True, slots=True)
class Push:
    """One push request: its body and the timestamps of its entries (sorted)."""

    body: bytes
    timestamps: list[int]


def timestamp_ns(time: datetime) -> int:
    return (time - EPOCH) // _US * 1000


def streams(batches: Iterable[DeviceBatch[LogsBatch]]) -> dict[Labels, list[Entry]]:
    """The batches' lines by Loki stream, streams in order of first appearance, each stream's
    entries in time order (stable)."""
    grouped: dict[Labels, list[Entry]] = {}
    for batch in batches:
        base = (("namespace", batch.namespace), ("device", batch.device))
        for line in batch.batch.lines:
            workload, stream = ("workload", line.workload), ("stream", line.stream)
            labels: Labels = (
                (*base, workload, ("container", line.container), stream)
                if line.container
                else (*base, workload, stream)
            )
            grouped.setdefault(labels, []).append((timestamp_ns(line.time), line.line))
    for entries in grouped.values():
        entries.sort(key=lambda entry: entry[0])  # stable: the device's order within an instant
    return grouped


def pushes(grouped: dict[Labels, list[Entry]], max_bytes: int) -> list[Push]:
    """The push requests for the streams, each with at most ``max_bytes`` of entries (at
    least one entry each); a stream's entries keep their order across requests."""
    requests: list[Push] = []
    body: list[dict[str, object]] = []
    stamps: list[int] = []
    size = 0

    def flush() -> None:
        nonlocal body, stamps, size
        if body:
            payload = msgspec.json.encode({"streams": body})
            requests.append(Push(payload, sorted(stamps)))
        body, stamps, size = [], [], 0

    for labels, entries in grouped.items():
        values: list[list[str]] = []
        for ns, line in entries:
            cost = len(line) + ENTRY_OVERHEAD  # characters: close enough to bytes for a cap
            if size + cost > max_bytes and (values or body):
                if values:
                    body.append({"stream": dict(labels), "values": values})
                flush()
                values = []
            values.append([str(ns), line])
            stamps.append(ns)
            size += cost
        body.append({"stream": dict(labels), "values": values})
    flush()
    return requests


# ---- Loki's answers ------------------------------------------------------------------------

_TIME_REFUSALS = (
    "too far behind",
    "out of order",
    "has timestamp too old",
    "has timestamp too new",
)
_TOTAL_IGNORED = re.compile(r"total ignored: (\d+) out of (\d+)")
_TOO_OLD = re.compile(
    r"has timestamp too old: ([^,\n]+)(?:, oldest acceptable timestamp is: ([^,\n]+))?"
)
_GO_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s*(Z|[+-]\d\d:?\d\d)?"
)


def go_time_ns(text: str) -> int | None:
    """A time as Loki prints it (Go's ``time.Time.String()`` or RFC 3339) -> nanoseconds."""
    match = _GO_TIME.search(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = timedelta(0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        return None
    seconds_ns = (moment - offset - EPOCH) // timedelta(seconds=1) * 1_000_000_000
    return seconds_ns + int((fraction or "0").ljust(9, "0"))


def time_refused(message: str, push: Push, *, now_ns: int, grace_ns: int) -> int | None:
    """How many entries of ``push`` a ``400`` with ``message`` refused for their time (the
    others were stored); None when the message is not about time (the push is invalid)."""
    if not any(reason in message for reason in _TIME_REFUSALS):
        return None
    counted = sum(int(match.group(1)) for match in _TOTAL_IGNORED.finditer(message))
    cutoffs, named = [], []  # one cutoff for the whole tenant, however often it is named
    for match in _TOO_OLD.finditer(message):
        named.append(go_time_ns(match.group(1)))
        cutoffs.append(go_time_ns(match.group(2) or ""))
    if known_cutoffs := [ns for ns in cutoffs if ns is not None]:
        counted += bisect.bisect_left(push.timestamps, max(known_cutoffs))
    elif known_named := [ns for ns in named if ns is not None]:
        # Loki 2.4 names no cutoff, only the last entry it refused (the newest refused of
        # its stream, since a stream's entries go in time order): a lower bound
        counted += bisect.bisect_right(push.timestamps, max(known_named))
    if "has timestamp too new" in message:
        counted += len(push.timestamps) - bisect.bisect_right(push.timestamps, now_ns + grace_ns)
    return min(len(push.timestamps), max(1, counted))


# ---- the sink ------------------------------------------------------------------------------


class LokiSink:
    """Implements :class:`flotta.exporter.sink.Sink` for logs batches."""

    def __init__(self, settings: LokiSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json"}
        if settings.tenant:
            self._headers["X-Scope-OrgID"] = settings.tenant

    @property
    def name(self) -> str:
        return "loki"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context: ssl.SSLContext | bool = True
            if self.settings.ca_file:
                context = ssl.create_default_context(cafile=self.settings.ca_file)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            )
        return self._session

    async def send(self, batches: Sequence[DeviceBatch[LogsBatch]]) -> SinkOutcome:
        requests = pushes(streams(batches), self.settings.max_request_bytes)
        items = too_old = 0
        for push in requests:
            outcome = await self._push(push)
            if not isinstance(outcome, Accepted):
                return outcome
            items += outcome.items
            too_old += outcome.too_old
        return Accepted(items, too_old)

    async def _push(self, push: Push) -> SinkOutcome:
        url = self.settings.push_url
        try:
            async with self._client().post(url, data=push.body, headers=self._headers) as answer:
                status = answer.status
                raw = await answer.content.read(ANSWER_BYTES)
                after = retry_after(answer.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Retry(f"loki {url}: {_describe(exc)}")
        entries = len(push.timestamps)
        if 200 <= status < 300:
            return Accepted(entries)
        text = raw.decode(errors="replace").strip()
        message = " ".join(text[:REASON_CHARS].split())
        if status in (408, 429) or status >= 500:
            return Retry(f"loki answered {status}: {message}", after)
        if status == 400:
            refused = time_refused(
                text,
                push,
                now_ns=time.time_ns(),
                grace_ns=int(self.settings.creation_grace_seconds * 1e9),
            )
            if refused is not None:
                return Accepted(entries - refused, too_old=refused)
        return Refused(f"loki answered {status}: {message}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__

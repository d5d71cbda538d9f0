"""A stand-in for Loki's HTTP API (push, ``query_range``, labels, ``ready``) on a loopback
port: the Loki of the local stack (``flotta dev loki``) and of the tests.

There is no real Loki to run here: Debian's package named ``loki`` is an unrelated program
(MCMC linkage analysis on pedigrees), Debian does not package Grafana Loki, and Loki's Go
module is AGPL, which the project does not take. So the Loki sink is tested over real HTTP,
and the local stack serves its logs, with this server, which reproduces what the sink depends
on in Loki 2.4's single binary, as Loki's source (distributor, ingester stream, validation)
has it:

* ``POST /loki/api/v1/push`` (JSON): a stream needs at least one label, label names are
  ``[a-zA-Z_][a-zA-Z0-9_]*``; a malformed body is ``400``.
* Distributor validation per entry, with ``limits``: older than now minus
  ``reject_old_samples_max_age`` when ``reject_old_samples`` (off by default in 2.4): "entry
  for stream '...' has timestamp too old: T"; later than now plus ``creation_grace_period``:
  "... has timestamp too new: T"; longer than ``max_line_size`` (0: no limit). Refused entries
  are dropped, the others still pushed, and the answer is ``400`` with the last refusal.
* Ingester, per stream: an entry equal in timestamp and text to the stream's last one is
  dropped silently; with ``unordered_writes`` (on by default since 2.4) an entry older than
  the stream's newest minus ``max_chunk_age / 2`` is refused ("entry too far behind"),
  without it one older than the last ("entry out of order"). The refusals of one stream come
  back as ``400`` "entry with timestamp T ignored, reason: '...' for stream: {...},"
  lines (the first 10) and "total ignored: N out of M"; with several such streams in a push,
  the last one's.
* Queries return entries equal in timestamp and text once, as Loki's iterators do. LogQL:
  a stream selector with ``=`` matchers, then line filters ``|= "text"`` and ``!= "text"``
  (``query_range``, ``query`` for the newest entries); ``labels`` and ``label/NAME/values``
  list what was pushed.
* With a ``store`` file, accepted entries are appended there (JSON lines) and read back at
  start, so a restarted stack keeps its logs.

It is not Loki (no metric queries, no regular expressions, no web UI; Grafana's Explore is
Loki's UI): the answers a test relies on are these, and ``fail_next`` makes it answer
whatever else a test needs (``429``, ``503`` with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from flotta.dev.nats_server import free_port

LOOPBACK = "127.0.0.1"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
SELECTOR = re.compile(r"^\s*\{([^{}]*)\}")
LINE_FILTER = re.compile(r'\s*(\|=|!=)\s*"((?:[^"\\]|\\.)*)"')
HOUR_NS = 3600 * 10**9
MAX_RETURNED_ERRORS = 10


@dataclass(frozen=True, slots=True)
class LokiLimits:
    reject_old_samples: bool = False
    reject_old_samples_max_age: timedelta = timedelta(days=7)
    creation_grace_period: timedelta = timedelta(minutes=10)
    unordered_writes: bool = True
    max_chunk_age: timedelta = timedelta(hours=2)
    max_line_size: int = 0


@dataclass(slots=True)
class _Stream:
    labels: dict[str, str]
    entries: list[tuple[int, str]] = field(default_factory=list)
    last: tuple[int, str] | None = None
    highest: int = 0


class _RefusedError(Exception):
    pass


def go_time(ns: int) -> str:
    """A time as Go's ``time.Time.String()`` prints it in UTC."""
    moment = datetime.fromtimestamp(ns // 10**9, UTC)
    fraction = f"{ns % 10**9:09d}".rstrip("0")
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "") + " +0000 UTC"
    )


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A LogQL log query of the subset served here: ``{a="b"} |= "x" != "y"``."""

    matchers: dict[str, str]
    contains: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def selects(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.matchers.items())

    def keeps(self, line: str) -> bool:
        return all(text in line for text in self.contains) and not any(
            text in line for text in self.excludes
        )


def parse_query(query: str) -> LogQuery:
    """ValueError for anything beyond a selector with ``=`` matchers and line filters."""
    selector = SELECTOR.match(query)
    if selector is None:
        raise ValueError('parse error: a stream selector {name="value", ...} comes first')
    inside = selector.group(1)
    matchers = {name: json.loads(f'"{value}"') for name, value in MATCHER.findall(inside)}
    if MATCHER.sub("", inside).strip():
        raise ValueError("parse error: only = matchers are served here")
    contains: list[str] = []
    excludes: list[str] = []
    rest = query[selector.end() :]
    while rest.strip():
        found = LINE_FILTER.match(rest)
        if found is None:
            raise ValueError(f'parse error: only |= "text" and != "text" filters: {rest.strip()!r}')
        (contains if found.group(1) == "|=" else excludes).append(json.loads(f'"{found.group(2)}"'))
        rest = rest[found.end() :]
    return LogQuery(matchers, tuple(contains), tuple(excludes))


class LokiStandIn:
    def __init__(
        self,
        limits: LokiLimits | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        store: Path | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``port`` 0: a free one; ``store``: a file that keeps the accepted entries across
        restarts; ``tls``: serve https with this server context."""
        self.limits = limits or LokiLimits()
        self.host = host
        self.port = port or free_port(host)
        self.store = store
        self.streams: dict[tuple[tuple[str, str], ...], _Stream] = {}
        self.requests: list[dict[str, Any]] = []
        """Every push as it arrived: headers and the decoded body."""
        self.tls = tls
        self.stall_seconds = 0.0
        """Pushes wait this long before they are answered (a Loki that hangs)."""
        self._failures: list[tuple[int, str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.store is not None and self.store.exists() and not self.streams:
            self._load(self.store)
        app = web.Application()
        app.router.add_post("/loki/api/v1/push", self._push)
        app.router.add_get("/loki/api/v1/query_range", self._query_range)
        app.router.add_get("/loki/api/v1/query", self._query)
        app.router.add_get("/loki/api/v1/labels", self._labels)
        app.router.add_get("/loki/api/v1/label/{name}/values", self._label_values)
        app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls).start()

    async def stop(self) -> None:
        """Close the listener and every connection; :meth:`start` again serves what was
        stored, on the same port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(
        self, status: int, body: str = "", *, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` pushes with ``status`` (storing nothing)."""
        self._failures += [(status, body, headers or {})] * times

    def lines(self, **labels: str) -> list[str]:
        """The stored text of the streams with these labels, oldest first (as a query)."""
        return [line for _, line in self.query(labels)]

    def query(self, matchers: dict[str, str]) -> list[tuple[int, str]]:
        found: set[tuple[int, str]] = set()
        for stream in self.streams.values():
            if all(stream.labels.get(k) == v for k, v in matchers.items()):
                found.update(stream.entries)
        return sorted(found, key=lambda entry: entry[0])

    # ---- handlers -------------------------------------------------------------------------

    async def _ready(self, _: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    async def _push(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
        if self._failures:
            status, text, headers = self._failures.pop(0)
            return web.Response(status=status, text=text, headers=headers)
        if request.content_type != "application/json":
            return _error(400, f"unsupported Content-Type {request.content_type!r}")
        try:
            document = json.loads(body)
            pushed = [
                (dict(s["stream"]), [(int(ts), str(line)) for ts, line in s["values"]])
                for s in document["streams"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"loghttp.PushRequest: {exc}")
        self.requests.append({"headers": dict(request.headers), "body": document})
        validation_error = ""
        accepted: list[tuple[dict[str, str], list[tuple[int, str]]]] = []
        now_ns = time.time_ns()
        for labels, entries in pushed:
            try:
                self._check_labels(labels)
            except _RefusedError as exc:
                validation_error = str(exc)
                continue
            valid = []
            for ns, line in entries:
                problem = self._validate_entry(labels, ns, line, now_ns)
                if problem:
                    validation_error = problem
                else:
                    valid.append((ns, line))
            if valid:
                accepted.append((labels, valid))
        ingester_error = ""
        for labels, entries in accepted:
            ingester_error = self._append(labels, entries) or ingester_error
        if self.store is not None and accepted:
            with self.store.open("a") as handle:
                for labels, entries in accepted:
                    handle.write(json.dumps({"stream": labels, "values": entries}) + "\n")
        if ingester_error:
            return _error(400, ingester_error)
        if validation_error:
            return _error(400, validation_error)
        return web.Response(status=204)

    def _check_labels(self, labels: dict[str, str]) -> None:
        if not labels:
            raise _RefusedError("error at least one label pair is required per stream")
        for name, value in labels.items():
            if not LABEL_NAME.match(name):
                raise _RefusedError(f"error parsing labels: invalid label name {name!r}")
            if not isinstance(value, str) or len(value) > 2048:
                raise _RefusedError(f"label value too long or not a string for {name!r}")

    def _validate_entry(self, labels: dict[str, str], ns: int, line: str, now_ns: int) -> str:
        limits = self.limits
        oldest = now_ns - int(limits.reject_old_samples_max_age.total_seconds() * 1e9)
        if limits.reject_old_samples and ns < oldest:
            return f"entry for stream '{labels_text(labels)}' has timestamp too old: {go_time(ns)}"
        if ns > now_ns + int(limits.creation_grace_period.total_seconds() * 1e9):
            return f"entry for stream '{labels_text(labels)}' has timestamp too new: {go_time(ns)}"
        if limits.max_line_size and len(line.encode()) > limits.max_line_size:
            return (
                f"Max entry size '{limits.max_line_size}' bytes exceeded for stream "
                f"'{labels_text(labels)}' while adding an entry with length "
                f"'{len(line.encode())}' bytes"
            )
        return ""

    def _append(self, labels: dict[str, str], entries: list[tuple[int, str]]) -> str:
        key = tuple(sorted(labels.items()))
        stream = self.streams.setdefault(key, _Stream(dict(labels)))
        window = int(self.limits.max_chunk_age.total_seconds() * 1e9) // 2
        refused: list[tuple[int, str]] = []
        for ns, line in entries:
            if stream.last == (ns, line):
                continue  # a repeat of the last line: dropped silently
            if self.limits.unordered_writes:
                if stream.highest and ns < stream.highest - window:
                    refused.append((ns, "entry too far behind"))
                    continue
            elif stream.last is not None and ns < stream.last[0]:
                refused.append((ns, "entry out of order"))
                continue
            stream.entries.append((ns, line))
            stream.last = (ns, line)
            stream.highest = max(stream.highest, ns)
        if not refused:
            return ""
        name = labels_text(labels)
        lines = [  # Loki lists at most max_returned_errors (10) of them, then the count
            f"entry with timestamp {go_time(ns)} ignored, reason: '{reason}' for stream: {name},"
            for ns, reason in refused[:MAX_RETURNED_ERRORS]
        ]
        return "\n".join([*lines, f"total ignored: {len(refused)} out of {len(entries)}"])

    def _load(self, store: Path) -> None:
        """The entries a previous run accepted (a torn last line is skipped)."""
        for text in store.read_text().splitlines():
            try:
                document = json.loads(text)
                labels = dict(document["stream"])
                entries = [(int(ns), str(line)) for ns, line in document["values"]]
            except (ValueError, KeyError, TypeError):
                continue
            self._append(labels, entries)

    async def _query_range(self, request: web.Request) -> web.Response:
        end = _param_ns(request.query.get("end")) or time.time_ns()
        start = _param_ns(request.query.get("start")) or end - HOUR_NS
        return self._answer(request, start, end)

    async def _query(self, request: web.Request) -> web.Response:
        """An instant log query: the newest entries up to ``time``."""
        end = (_param_ns(request.query.get("time")) or time.time_ns()) + 1
        return self._answer(request, 0, end)

    async def _labels(self, _: web.Request) -> web.Response:
        names = sorted({name for stream in self.streams.values() for name in stream.labels})
        return web.json_response({"status": "success", "data": names})

    async def _label_values(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        values = {s.labels[name] for s in self.streams.values() if name in s.labels}
        return web.json_response({"status": "success", "data": sorted(values)})

    def _answer(self, request: web.Request, start: int, end: int) -> web.Response:
        try:
            query = parse_query(request.query.get("query", ""))
        except ValueError as exc:
            return _error(400, str(exc))
        limit = int(request.query.get("limit", "100"))
        forward = request.query.get("direction", "backward") == "forward"
        result = []
        for stream in self.streams.values():
            if not query.selects(stream.labels):
                continue
            entries = sorted(
                {e for e in stream.entries if start <= e[0] < end and query.keeps(e[1])}
            )
            entries = entries if forward else entries[::-1]
            if entries:
                values = [[str(ns), line] for ns, line in entries[:limit]]
                result.append({"stream": stream.labels, "values": values})
        return web.json_response(
            {"status": "success", "data": {"resultType": "streams", "result": result}}
        )


def _param_ns(value: str | None) -> int | None:
    if not value:
        return None
    if value.isdigit():
        return int(value)
    if value.replace(".", "", 1).isdigit():  # seconds, as Grafana and logcli send them
        return int(float(value) * 1e9)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")

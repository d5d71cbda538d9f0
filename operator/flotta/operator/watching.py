"""List and watch one kind of object in a thread, feeding a bounded asyncio queue.

The Kubernetes client is synchronous: each watcher runs in its own thread. It lists (in pages),
hands the whole snapshot over as one ``RELISTED`` event, then watches from the list's
resourceVersion, resuming from the last one it saw after a dropped connection or an API
restart, and listing again on 410 Gone. When the queue is full the thread waits (the queue
is bounded; a slow consumer slows the watch, it does not grow memory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flotta.backoff import Backoff, BackoffPolicy
from flotta.schemas.crd.common import GROUP, VERSION

logger = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED", "RELISTED"]
GONE = 410
PAGE_SIZE = 500
WATCH_TIMEOUT = 300
# After a failed list or watch: 0.2 s, doubling up to 5 s, no jitter (one client per kind).
RETRY = BackoffPolicy(base=0.2, cap=5.0, jitter=0.0)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: str
    type: EventType
    obj: dict[str, Any] = field(default_factory=dict)
    objects: tuple[dict[str, Any], ...] = ()  # the whole snapshot, for RELISTED


ListFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class WatchedKind:
    """A kind to watch cluster-wide: its name and the client's list function."""

    kind: str
    list_function: ListFunction


def flotta_kind(api: client.ApiClient, kind: str, plural: str) -> WatchedKind:
    objects = client.CustomObjectsApi(api)

    def list_function(**kwargs: Any) -> Any:
        return objects.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs)

    return WatchedKind(kind, list_function)


def core_kind(api: client.ApiClient, kind: str) -> WatchedKind:
    core = client.CoreV1Api(api)
    functions = {
        "Secret": core.list_secret_for_all_namespaces,
        "ConfigMap": core.list_config_map_for_all_namespaces,
    }
    return WatchedKind(kind, functions[kind])


class Watcher:
    def __init__(
        self,
        watched: WatchedKind,
        queue: asyncio.Queue[WatchEvent],
        loop: asyncio.AbstractEventLoop,
        *,
        timeout_seconds: int = WATCH_TIMEOUT,
    ) -> None:
        self.watched = watched
        self._queue = queue
        self._loop = loop
        self._timeout = timeout_seconds
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{watched.kind}", daemon=True)
        self.resource_version = ""
        self.relists = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop; it ends at its next event, or when its connection closes."""
        self._stopping.set()
        response = self._response
        if response is not None:
            # Interrupts the thread's blocking read (urllib3 2.3+); close() otherwise.
            if hasattr(response, "shutdown"):
                response.shutdown()
            else:
                response.close()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = Backoff(RETRY)
        while not self._stopping.is_set():
            try:
                if not self.resource_version:
                    self._relist()
                self._watch_once()
                backoff.reset()
            except ApiException as exc:
                if self._stopping.is_set():
                    return
                if exc.status == GONE:
                    logger.info("%s watch expired (410 Gone): listing again", self.watched.kind)
                    self.resource_version = ""
                    continue
                self.errors += 1
                logger.warning("%s watch failed: %s %s", self.watched.kind, exc.status, exc.reason)
            except Exception as exc:  # connection refused, reset, API restart
                if self._stopping.is_set():
                    return
                self.errors += 1
                logger.warning("%s watch failed: %r", self.watched.kind, exc)
            if self._stopping.wait(backoff.next_delay()):
                return

    def _relist(self) -> None:
        objects: list[dict[str, Any]] = []
        token = ""
        while True:
            response = self.watched.list_function(
                limit=PAGE_SIZE, _continue=token or None, _preload_content=False
            )
            page = json.loads(response.data)
            objects.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                break
        self.relists += 1
        kind = self.watched.kind
        for obj in objects:
            obj.setdefault("kind", kind)
        self._put(WatchEvent(kind, "RELISTED", objects=tuple(objects)))
        self.resource_version = (page.get("metadata") or {}).get("resourceVersion") or ""

    def _watch_once(self) -> None:
        response = self.watched.list_function(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout,
            _preload_content=False,
        )
        self._response = response
        try:
            for line in _lines(response):
                if self._stopping.is_set():
                    return
                self._handle(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            raise ApiException(status=code, reason=f"{obj.get('reason')}: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = version
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            obj.setdefault("kind", self.watched.kind)
            self._put(WatchEvent(self.watched.kind, kind, obj))

    def _put(self, event: WatchEvent) -> None:
        while not self._stopping.is_set():
            future = asyncio.run_coroutine_threadsafe(self._queue.put(event), self._loop)
            try:
                future.result(timeout=1.0)
                return
            except TimeoutError:
                future.cancel()


def _lines(response: Any) -> Iterator[bytes]:
    """The newline-separated JSON events of a watch response, as they arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending

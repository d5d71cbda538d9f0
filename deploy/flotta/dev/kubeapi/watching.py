"""The watch hub: recent history per collection and bounded per-watcher queues.

A watcher whose queue fills up is closed with 410 Expired (the client re-lists), like
kube-apiserver closes a watcher that cannot keep up.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from flotta.dev.kubeapi.selectors import FieldSelector, LabelSelector, field_getter
from flotta.dev.kubeapi.storage import Entry

logger = logging.getLogger(__name__)


@dataclass
class WatchEvent:
    """One change to one object, shared by every watcher that receives it."""

    type: str  # ADDED, MODIFIED, DELETED
    namespace: str
    name: str
    entry: Entry
    previous_labels: dict[str, str] | None = None
    _line: bytes | None = field(default=None, repr=False)

    @property
    def resource_version(self) -> int:
        return self.entry.resource_version

    def line(self, event_type: str | None = None) -> bytes:
        """The event as one JSON line of a watch stream."""
        kind = event_type or self.type
        if kind != self.type:
            return _encode_line(kind, self.entry.raw)
        if self._line is None:
            self._line = _encode_line(kind, self.entry.raw)
        return self._line


def _encode_line(event_type: str, raw: str) -> bytes:
    return f'{{"type":"{event_type}","object":{raw}}}\n'.encode()


def error_line(status: dict[str, Any]) -> bytes:
    return json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")).encode() + b"\n"


@dataclass
class Filter:
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    fields_need_object: bool

    def matches(self, namespace: str, name: str, labels: dict[str, str], entry: Entry) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if not self.labels.matches(labels):
            return False
        if not self.fields.requirements:
            return True
        if self.fields_need_object:
            return self.fields.matches(field_getter(entry.load()))
        return self.fields.matches(
            field_getter({"metadata": {"name": name, "namespace": namespace}})
        )

    def effective_type(self, event: WatchEvent) -> str | None:
        """The event type this watcher sees (objects entering/leaving the selector), or None."""
        now = self.matches(event.namespace, event.name, event.entry.labels, event.entry)
        if event.type != "MODIFIED" or event.previous_labels is None:
            return event.type if now else None
        before = self.matches(event.namespace, event.name, event.previous_labels, event.entry)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        if before:
            return "DELETED"
        return None


class Watcher:
    """One open watch: a bounded queue of (event type, event) and a reason to stop."""

    def __init__(self, collection: str, selection: Filter, queue_size: int) -> None:
        self.collection = collection
        self.filter = selection
        self.queue: asyncio.Queue[tuple[str, WatchEvent]] = asyncio.Queue(maxsize=queue_size)
        self.expired = asyncio.Event()

    def offer(self, event: WatchEvent) -> bool:
        """Queue ``event`` if it concerns this watcher; False when the queue is full."""
        event_type = self.filter.effective_type(event)
        if event_type is None:
            return True
        try:
            self.queue.put_nowait((event_type, event))
        except asyncio.QueueFull:
            return False
        return True


class WatchHub:
    """Publishes committed changes to watchers and keeps a window of recent events."""

    def __init__(self, *, start_version: int, history_size: int, queue_size: int) -> None:
        self._history: dict[str, collections.deque[WatchEvent]] = {}
        self._history_size = history_size
        self._queue_size = queue_size
        # a watch from a resourceVersion below this cannot be served: events were dropped
        self._oldest_valid: dict[str, int] = {}
        self._start_version = start_version
        self._watchers: dict[str, set[Watcher]] = {}
        self.expired_watchers = 0

    def oldest_valid(self, collection: str) -> int:
        return self._oldest_valid.get(collection, self._start_version)

    def publish(self, collection: str, event: WatchEvent) -> None:
        history = self._history.setdefault(collection, collections.deque())
        history.append(event)
        if len(history) > self._history_size:
            dropped = history.popleft()
            self._oldest_valid[collection] = dropped.resource_version
        for watcher in list(self._watchers.get(collection, ())):
            if not watcher.offer(event):
                self.expired_watchers += 1
                logger.warning("watcher on %s fell behind; closing it with 410", collection)
                self.remove(watcher)
                watcher.expired.set()

    def since(self, collection: str, version: int) -> list[WatchEvent]:
        """Events of ``collection`` after ``version`` (the caller checked oldest_valid)."""
        return [
            event for event in self._history.get(collection, ()) if event.resource_version > version
        ]

    def add(self, collection: str, selection: Filter) -> Watcher:
        watcher = Watcher(collection, selection, self._queue_size)
        self._watchers.setdefault(collection, set()).add(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.collection, set()).discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    def drop_collection(self, collection: str) -> None:
        """Close every watcher of a collection (its CRD was deleted)."""
        for watcher in list(self._watchers.pop(collection, ())):
            watcher.expired.set()
        self._history.pop(collection, None)

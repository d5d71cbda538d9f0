"""List then watch one Flotta custom resource of every namespace, in a thread (the official
synchronous Kubernetes client): the bridge's EdgeDevices, the exporter's EdgeDevices, sets and
workloads.

The thread lists, hands the items to ``on_list``, then watches from the list's
resourceVersion and hands each ADDED, MODIFIED or DELETED object to ``on_event``. After any
error (a 410 Gone or a watch ``ERROR`` event included) it lists again after a capped,
doubling delay. The callbacks run on the watch thread; a caller that lives on an asyncio loop
hands them over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.backoff import Backoff, BackoffPolicy
from flotta.schemas.crd.common import GROUP, VERSION

logger = logging.getLogger(__name__)

WATCH_SECONDS = 240
REQUEST_TIMEOUT = (5.0, 30.0)
# After a failed list or watch: relist after 0.5 s, doubling up to 30 s, no jitter.
RELIST = BackoffPolicy(base=0.5, cap=30.0, jitter=0.0)

ListHandler = Callable[[list[dict[str, Any]]], None]
# (type, object) for ADDED, MODIFIED and DELETED
EventHandler = Callable[[str, dict[str, Any]], None]


def api_client(kubeconfig: Path | None) -> k8s.ApiClient:
    """A client from a kubeconfig file, else from the in-cluster service account."""
    if kubeconfig is not None:
        made = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        return cast(k8s.ApiClient, made)
    k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def failure(exc: Exception) -> tuple[int | None, str]:
    """The HTTP status (None without one) and the reason of a failed API call."""
    if isinstance(exc, ApiException):
        return exc.status, str(exc.reason)
    return None, str(exc)


class CustomObjectWatch:
    """List then watch the custom resource ``plural`` of every namespace in a thread named
    ``watch-<plural>``; relist after an error. Stops when ``stop`` is set (its own event
    unless one is given) and :meth:`stop` interrupts the watch."""

    def __init__(
        self,
        api: k8s.ApiClient,
        plural: str,
        *,
        on_list: ListHandler,
        on_event: EventHandler,
        stop: threading.Event | None = None,
        label: str | None = None,
    ) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._plural = plural
        self._on_list = on_list
        self._on_event = on_event
        self._stop = stop if stop is not None else threading.Event()
        self._label = label or plural  # how the log names it
        self._watch: k8s_watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        backoff = Backoff(RELIST)
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff.reset()
                self._follow(version)
            except (ApiException, HTTPError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                status, detail = failure(exc)
                delay = backoff.next_delay()
                logger.warning(
                    "%s watch: HTTP %s %s; relisting in %.1f s", self._label, status, detail, delay
                )
                self._stop.wait(delay)

    def _list(self) -> str:
        listing = cast(
            dict[str, Any],
            self._custom.list_cluster_custom_object(
                GROUP, VERSION, self._plural, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        self._on_list(listing.get("items", []))
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _follow(self, version: str) -> None:
        while not self._stop.is_set():
            self._watch = k8s_watch.Watch()  # type: ignore[no-untyped-call]
            for event in self._watch.stream(  # type: ignore[no-untyped-call]
                self._custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                self._plural,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=(5.0, WATCH_SECONDS + 30.0),
            ):
                kind = event.get("type", "")
                obj = event.get("object")
                if kind == "ERROR":
                    code = obj.get("code") if isinstance(obj, dict) else None
                    raise ApiException(status=code or 500, reason="watch error")
                if not isinstance(obj, dict):
                    continue
                version = str(obj.get("metadata", {}).get("resourceVersion", version))
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_event(kind, obj)
                if self._stop.is_set():
                    return

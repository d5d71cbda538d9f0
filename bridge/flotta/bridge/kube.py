"""Kubernetes adapter (the official synchronous client): list and watch EdgeDevices in all
namespaces, merge-patch ``/status``, create Events. Blocking calls run in threads; results
reach the asyncio loop through ``call_soon_threadsafe``."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.backoff import Backoff, BackoffPolicy
from flotta.bridge.errors import KubeWriteError
from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION
from flotta.schemas.crd.device import EdgeDevice

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
WATCH_SECONDS = 240
REQUEST_TIMEOUT = (5.0, 30.0)
COMPONENT = "flotta-bridge"
# After a failed list or watch: relist after 0.5 s, doubling up to 30 s, no jitter.
RELIST = BackoffPolicy(base=0.5, cap=30.0, jitter=0.0)

# (type, object) for ADDED/MODIFIED/DELETED; ("SYNCED", {}) after each complete list
WatchHandler = Callable[[str, dict[str, Any]], None]


def api_client(kubeconfig: Path | None) -> k8s.ApiClient:
    """A client from a kubeconfig file, else from the in-cluster service account."""
    if kubeconfig is not None:
        made = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        return cast(k8s.ApiClient, made)
    k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def _reason(exc: Exception) -> tuple[int | None, str]:
    if isinstance(exc, ApiException):
        return exc.status, str(exc.reason)
    return None, str(exc)


class DeviceWatch:
    """List then watch EdgeDevices of every namespace in a thread; relist after a 410."""

    def __init__(self, api: k8s.ApiClient, loop: asyncio.AbstractEventLoop, on_event: WatchHandler):
        self._custom = k8s.CustomObjectsApi(api)
        self._loop = loop
        self._on_event = on_event
        self._stop = threading.Event()
        self._watch: k8s_watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="edgedevice-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        if not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._on_event, kind, obj)

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
                status, detail = _reason(exc)
                delay = backoff.next_delay()
                logger.warning(
                    "EdgeDevice watch: HTTP %s %s; relisting in %.1f s", status, detail, delay
                )
                self._stop.wait(delay)

    def _list(self) -> str:
        listing: dict[str, Any] = cast(
            dict[str, Any],
            self._custom.list_cluster_custom_object(
                GROUP, VERSION, EdgeDevice.PLURAL, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        for item in listing.get("items", []):
            item.setdefault("kind", EdgeDevice.KIND)
            self._emit("ADDED", item)
        self._emit("SYNCED", {"items": listing.get("items", [])})
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _follow(self, version: str) -> None:
        while not self._stop.is_set():
            self._watch = k8s_watch.Watch()  # type: ignore[no-untyped-call]
            for event in self._watch.stream(  # type: ignore[no-untyped-call]
                self._custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                EdgeDevice.PLURAL,
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
                    self._emit(kind, obj)
                if self._stop.is_set():
                    return


class KubeWriter:
    """Blocking writes; call them from worker threads."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._core = k8s.CoreV1Api(api)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                EdgeDevice.PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except (ApiException, HTTPError, OSError) as exc:
            status, detail = _reason(exc)
            raise KubeWriteError(
                f"status of EdgeDevice {namespace}/{name}", status, detail
            ) from None

    def create_event(self, namespace: str, device: str, uid: str, event: KubeEvent) -> None:
        stamp = _rfc3339(event.time)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{device}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
                "annotations": {"flotta.io/event-id": event.event_id},
            },
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": EdgeDevice.KIND,
                "name": device,
                "namespace": namespace,
                "uid": uid,
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": COMPONENT, "host": device},
            "reportingComponent": COMPONENT,
            "reportingInstance": device,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            model = k8s.CoreV1Event.from_dict(body)
            assert model is not None
            self._core.create_namespaced_event(namespace, model, _request_timeout=REQUEST_TIMEOUT)
        except (ApiException, HTTPError, OSError) as exc:
            status, detail = _reason(exc)
            raise KubeWriteError(
                f"Event for EdgeDevice {namespace}/{device}", status, detail
            ) from None


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class KubeEvent:
    """What a Kubernetes Event about an EdgeDevice says."""

    event_id: str
    type: str
    reason: str
    message: str
    time: datetime

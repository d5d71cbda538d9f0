"""Kubernetes adapter (the official synchronous client): list and watch EdgeDevices in all
namespaces, merge-patch ``/status``, create Events. Blocking calls run in threads; results
reach the asyncio loop through ``call_soon_threadsafe``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.bridge.errors import KubeWriteError
from flotta.kube_watch import REQUEST_TIMEOUT, CustomObjectWatch, failure
from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION, kube_time
from flotta.schemas.crd.device import EdgeDevice

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "flotta-bridge"

# (type, object) for ADDED/MODIFIED/DELETED; ("SYNCED", {}) after each complete list
WatchHandler = Callable[[str, dict[str, Any]], None]


class DeviceWatch:
    """List then watch EdgeDevices of every namespace in a thread; relist after a 410. Each
    event reaches ``on_event`` on the asyncio loop."""

    def __init__(self, api: k8s.ApiClient, loop: asyncio.AbstractEventLoop, on_event: WatchHandler):
        self._loop = loop
        self._on_event = on_event
        self._watch = CustomObjectWatch(
            api, EdgeDevice.PLURAL, on_list=self._listed, on_event=self._emit, label="EdgeDevice"
        )
        self._stopped = False

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        if not self._stopped:
            self._loop.call_soon_threadsafe(self._on_event, kind, obj)

    def _listed(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            item.setdefault("kind", EdgeDevice.KIND)
            self._emit("ADDED", item)
        self._emit("SYNCED", {"items": items})


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
            status, detail = failure(exc)
            raise KubeWriteError(
                f"status of EdgeDevice {namespace}/{name}", status, detail
            ) from None

    def create_event(self, namespace: str, device: str, uid: str, event: KubeEvent) -> None:
        stamp = kube_time(event.time)
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
            status, detail = failure(exc)
            raise KubeWriteError(
                f"Event for EdgeDevice {namespace}/{device}", status, detail
            ) from None


@dataclass(frozen=True, slots=True)
class KubeEvent:
    """What a Kubernetes Event about an EdgeDevice says."""

    event_id: str
    type: str
    reason: str
    message: str
    time: datetime

"""Kubernetes adapter of the exporter (the official synchronous client, in threads): the
EdgeDevices, EdgeDeviceSets and EdgeWorkloads of every namespace (list, then watch; relist
after an error), the Secrets their ``caSecretName`` names and the syslog ConfigMaps their
``logCollection`` entries name (each read when first needed, read again every
``OBJECT_REFRESH`` seconds). Where a device's metrics and a workload's lines go is decided by
:mod:`flotta.exporter.routing` (pure) from what is held here.

Lookups (:meth:`KubeReceivers.receiver`) are answered from memory on the caller's thread,
under a lock the watch threads take only to swap a dictionary entry: the delivery loop never
waits for the API. A device the watch does not know (yet) uses the default receiver.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.exporter.routing import (
    CA_KEY,
    Receiver,
    choose_receiver,
    log_collection_section,
    member_of,
    metrics_section,
    syslog_config_map,
    workload_log_key,
)
from flotta.kube_watch import REQUEST_TIMEOUT, CustomObjectWatch, api_client
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.workload import EdgeWorkload

logger = logging.getLogger(__name__)

OBJECT_REFRESH = 60.0  # seconds between reads of a Secret or ConfigMap in use

Key = tuple[str, str]  # namespace, name
ObjectKey = tuple[str, str, str]  # "Secret" or "ConfigMap", namespace, name


class KubeReceivers:
    def __init__(self, kubeconfig: Path | None, *, default: Receiver) -> None:
        self.default = default
        self._api = api_client(kubeconfig)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # namespace/name -> (set name, metrics section, logCollection map) of each EdgeDevice
        self._devices: dict[Key, tuple[str | None, Any, Any]] = {}
        self._sets: dict[Key, tuple[Any, Any]] = {}  # -> (metrics, logCollection)
        self._workloads: dict[Key, str | None] = {}  # -> the workload's logCollection key
        # Secrets' ca.crt and ConfigMaps' data, read on demand: -> (read at, value)
        self._objects: dict[ObjectKey, tuple[float, Any]] = {}
        self._wanted: set[ObjectKey] = set()
        # Each device's receiver as last decided (parsing its section costs tens of us, and
        # this is asked for every batch); emptied whenever anything it depends on changes.
        self._decided: dict[Key, Receiver] = {}
        self._generation = 0  # counts those changes, so a decision raced by one is not kept
        self._wake = threading.Event()
        self._watches = [
            _Watch(self._api, EdgeDevice.PLURAL, self._on_device, self._stop),
            _Watch(self._api, EdgeDeviceSet.PLURAL, self._on_set, self._stop),
            _Watch(self._api, EdgeWorkload.PLURAL, self._on_workload, self._stop),
        ]
        self._reader = threading.Thread(target=self._read_loop, name="kube-objects", daemon=True)

    @property
    def synced(self) -> bool:
        return all(watch.synced.is_set() for watch in self._watches)

    def start(self) -> None:
        for watch in self._watches:
            watch.start()
        self._reader.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for watch in self._watches:
            watch.stop()
        self._api.close()  # type: ignore[no-untyped-call]

    # ---- lookups (any thread) ----------------------------------------------------------------

    def receiver(self, namespace: str, device: str) -> Receiver:
        decided = self._decided.get((namespace, device))
        if decided is not None:
            return decided
        generation = self._generation
        known = self._devices.get((namespace, device))
        if known is None:
            return self.default
        set_name, device_metrics, _ = known
        in_set = self._sets.get((namespace, set_name)) if set_name else None
        decided = choose_receiver(
            namespace,
            device_metrics,
            in_set[0] if in_set is not None else None,
            in_set is not None,
            default=self.default,
            ca=self._ca,
        )
        # Unavailable: decided again next time, until its CA Secret is read.
        if decided.unavailable is None and generation == self._generation:
            self._decided[(namespace, device)] = decided
            if generation != self._generation:  # changed meanwhile: not kept
                self._decided.pop((namespace, device), None)
        return decided

    def _changed(self) -> None:
        """Something a decision depends on changed (called from the watch and read threads,
        after the change)."""
        self._generation += 1
        self._decided.clear()

    def syslog_config(
        self, namespace: str, device: str, workload: str
    ) -> tuple[str, dict[str, str] | None] | None:
        """The syslog ConfigMap a workload's lines on a device go to, as ``(name, data)``
        (data None while it is not read, or missing); None: no syslog server of its own."""
        known = self._devices.get((namespace, device))
        if known is None:
            return None
        set_name, _, device_logs = known
        in_set = self._sets.get((namespace, set_name)) if set_name else None
        name = syslog_config_map(
            self._workloads.get((namespace, workload)),
            device_logs,
            in_set[1] if in_set is not None else None,
            in_set is not None,
        )
        if name is None:
            return None
        return name, self._object("ConfigMap", namespace, name)

    def _ca(self, namespace: str, name: str) -> str | None:
        value = self._object("Secret", namespace, name)
        return value if isinstance(value, str) else None

    def _object(self, kind: str, namespace: str, name: str) -> Any:
        key = (kind, namespace, name)
        held = self._objects.get(key)
        if held is None:
            with self._lock:
                self._wanted.add(key)
            self._wake.set()
            return None
        return held[1]

    # ---- watch callbacks (watch threads) -----------------------------------------------------

    def _on_device(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        with self._lock:
            if kind == "DELETED":
                self._devices.pop(key, None)
            else:
                self._devices[key] = (
                    member_of(obj),
                    metrics_section(obj),
                    log_collection_section(obj),
                )
            self._changed()

    def _on_set(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        with self._lock:
            if kind == "DELETED":
                self._sets.pop(key, None)
            else:
                self._sets[key] = (metrics_section(obj), log_collection_section(obj))
            self._changed()

    def _on_workload(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        with self._lock:
            if kind == "DELETED":
                self._workloads.pop(key, None)
            else:
                self._workloads[key] = workload_log_key(obj)

    # ---- Secrets and ConfigMaps (their own thread) -------------------------------------------

    def _read_loop(self) -> None:
        core = k8s.CoreV1Api(self._api)
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                due = set(self._wanted)
                due.update(k for k, (at, _) in self._objects.items() if now - at > OBJECT_REFRESH)
                self._wanted.clear()
            for kind, namespace, name in sorted(due):
                if self._stop.is_set():
                    return
                if kind == "Secret":
                    value: Any = _read_ca(core, namespace, name)
                else:
                    value = _read_config_map(core, namespace, name)
                self._objects[(kind, namespace, name)] = (time.monotonic(), value)
                if kind == "Secret":
                    self._changed()  # a rotated CA: receivers decided again


def _read_config_map(core: k8s.CoreV1Api, namespace: str, name: str) -> dict[str, str] | None:
    try:
        found = core.read_namespaced_config_map(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, HTTPError, OSError) as exc:
        status = exc.status if isinstance(exc, ApiException) else None
        logger.warning("ConfigMap %s/%s not read: HTTP %s %s", namespace, name, status, exc)
        return None
    return dict(found.data or {})


def _read_ca(core: k8s.CoreV1Api, namespace: str, name: str) -> str | None:
    try:
        secret = core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, HTTPError, OSError) as exc:
        status = exc.status if isinstance(exc, ApiException) else None
        logger.warning("CA Secret %s/%s not read: HTTP %s %s", namespace, name, status, exc)
        return None
    encoded = (secret.data or {}).get(CA_KEY)
    if not encoded:
        logger.warning("Secret %s/%s has no %s", namespace, name, CA_KEY)
        return None
    try:
        return base64.b64decode(encoded).decode()
    except (binascii.Error, UnicodeDecodeError):
        logger.warning("Secret %s/%s: %s is not base64 PEM", namespace, name, CA_KEY)
        return None


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class _Watch:
    """Every object of one custom resource, told to ``on_event`` as ``ADDED``, ``MODIFIED``
    or ``DELETED``; after a relist, objects gone meanwhile are told as ``DELETED``."""

    def __init__(self, api: k8s.ApiClient, plural: str, on_event: Any, stop: threading.Event):
        self._on_event = on_event
        self._known: set[Key] = set()
        self.synced = threading.Event()
        self._watch = CustomObjectWatch(
            api, plural, on_list=self._listed, on_event=self._event, stop=stop
        )

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()

    def _listed(self, items: list[dict[str, Any]]) -> None:
        seen: set[Key] = set()
        for item in items:
            seen.add(_key(item))
            self._on_event("ADDED", item)
        for namespace, name in self._known - seen:
            self._on_event("DELETED", {"metadata": {"namespace": namespace, "name": name}})
        self._known = seen
        self.synced.set()

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self._known.discard(key)
        else:
            self._known.add(key)
        self._on_event(kind, obj)

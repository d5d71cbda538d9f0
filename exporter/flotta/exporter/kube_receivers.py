"""Kubernetes adapter of the exporter (the official synchronous client, in threads): the
EdgeDevices and EdgeDeviceSets of every namespace (list, then watch; relist after an error),
and the Secrets their ``caSecretName`` names (read when first needed, read again every
``SECRET_REFRESH`` seconds). The receiver of each device is decided by
:func:`flotta.exporter.routing.choose_receiver` (pure) from what is held here.

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
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.backoff import Backoff, BackoffPolicy
from flotta.exporter.routing import CA_KEY, Receiver, choose_receiver, member_of, metrics_section
from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet

logger = logging.getLogger(__name__)

WATCH_SECONDS = 240
REQUEST_TIMEOUT = (5.0, 30.0)
SECRET_REFRESH = 60.0  # seconds between reads of a CA Secret in use
RELIST = BackoffPolicy(base=0.5, cap=30.0, jitter=0.0)

Key = tuple[str, str]  # namespace, name


def api_client(kubeconfig: Path | None) -> k8s.ApiClient:
    """A client from a kubeconfig file, else from the in-cluster service account."""
    if kubeconfig is not None:
        made = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        return cast(k8s.ApiClient, made)
    k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


class KubeReceivers:
    def __init__(self, kubeconfig: Path | None, *, default: Receiver) -> None:
        self.default = default
        self._api = api_client(kubeconfig)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # namespace/name -> (set name, metrics section) of each EdgeDevice
        self._devices: dict[Key, tuple[str | None, Any]] = {}
        self._sets: dict[Key, Any] = {}  # namespace/name -> metrics section
        self._secrets: dict[Key, tuple[float, str | None]] = {}  # -> (read at, ca.crt)
        self._wanted: set[Key] = set()
        self._wake = threading.Event()
        self._watches = [
            _Watch(self._api, EdgeDevice.PLURAL, self._on_device, self._stop),
            _Watch(self._api, EdgeDeviceSet.PLURAL, self._on_set, self._stop),
        ]
        self._secret_thread = threading.Thread(
            target=self._secret_loop, name="ca-secrets", daemon=True
        )

    @property
    def synced(self) -> bool:
        return all(watch.synced.is_set() for watch in self._watches)

    def start(self) -> None:
        for watch in self._watches:
            watch.start()
        self._secret_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for watch in self._watches:
            watch.stop()
        self._api.close()  # type: ignore[no-untyped-call]

    # ---- lookups (any thread) ----------------------------------------------------------------

    def receiver(self, namespace: str, device: str) -> Receiver:
        known = self._devices.get((namespace, device))
        if known is None:
            return self.default
        set_name, device_metrics = known
        set_metrics = self._sets.get((namespace, set_name)) if set_name else None
        set_exists = set_name is not None and (namespace, set_name) in self._sets
        return choose_receiver(
            namespace,
            device_metrics,
            set_metrics,
            set_exists,
            default=self.default,
            ca=self._ca,
        )

    def _ca(self, namespace: str, name: str) -> str | None:
        key = (namespace, name)
        held = self._secrets.get(key)
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
                self._devices[key] = (member_of(obj), metrics_section(obj))

    def _on_set(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        with self._lock:
            if kind == "DELETED":
                self._sets.pop(key, None)
            else:
                self._sets[key] = metrics_section(obj)

    # ---- CA Secrets (their own thread) -------------------------------------------------------

    def _secret_loop(self) -> None:
        core = k8s.CoreV1Api(self._api)
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                due = set(self._wanted)
                due.update(k for k, (at, _) in self._secrets.items() if now - at > SECRET_REFRESH)
                self._wanted.clear()
            for namespace, name in sorted(due):
                if self._stop.is_set():
                    return
                ca = _read_ca(core, namespace, name)
                self._secrets[(namespace, name)] = (time.monotonic(), ca)


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
    """List then watch one custom resource of every namespace in a thread; relist after an
    error (a 410 included), replacing what the callback was told with ``DELETED`` for objects
    gone meanwhile."""

    def __init__(self, api: k8s.ApiClient, plural: str, on_event: Any, stop: threading.Event):
        self._custom = k8s.CustomObjectsApi(api)
        self._plural = plural
        self._on_event = on_event
        self._stop = stop
        self._known: set[Key] = set()
        self._watch: k8s_watch.Watch | None = None
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
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
                delay = backoff.next_delay()
                logger.warning("%s watch: %s; relisting in %.1f s", self._plural, exc, delay)
                self._stop.wait(delay)

    def _list(self) -> str:
        listing = cast(
            dict[str, Any],
            self._custom.list_cluster_custom_object(
                GROUP, VERSION, self._plural, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        seen: set[Key] = set()
        for item in listing.get("items", []):
            seen.add(_key(item))
            self._on_event("ADDED", item)
        for namespace, name in self._known - seen:
            self._on_event("DELETED", {"metadata": {"namespace": namespace, "name": name}})
        self._known = seen
        self.synced.set()
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
                    key = _key(obj)
                    if kind == "DELETED":
                        self._known.discard(key)
                    else:
                        self._known.add(key)
                    self._on_event(kind, obj)
                if self._stop.is_set():
                    return

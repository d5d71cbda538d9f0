"""Writes to the Kubernetes API: merge patches of only the operator's own fields, creates,
Events. The client is synchronous; every call runs in a worker thread.

Statuses are merge-patched (the bridge patches other fields of the same status); a failed
call raises TransportError, except a missing object (the write is moot: returns False) and a
conflict on create (returns the existing object).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.operator.errors import TransportError
from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "flotta-operator"
NOT_FOUND = 404
CONFLICT = 409


class ConflictError(TransportError):
    """The object changed since it was read (resourceVersion precondition failed)."""


def _wrap(exc: ApiException, what: str) -> TransportError:
    if exc.status == CONFLICT:
        return ConflictError(f"{what}: conflict")
    return TransportError(f"{what}: {exc.status} {exc.reason}")


async def _run(call: Any, what: str) -> Any:
    """Run a client call in a thread; connection failures become TransportError."""
    try:
        return await asyncio.to_thread(call)
    except (HTTPError, OSError) as exc:
        raise TransportError(f"{what}: the Kubernetes API is unreachable ({exc!r})") from None


class KubeWriter:
    def __init__(self, api: client.ApiClient, *, component: str = COMPONENT) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._component = component

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object; when it exists already, return the existing one."""
        name = body["metadata"]["name"]

        def call() -> dict[str, Any]:
            try:
                return cast(
                    dict[str, Any],
                    self._objects.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, body
                    ),
                )
            except ApiException as exc:
                if exc.status == CONFLICT:
                    return cast(
                        dict[str, Any],
                        self._objects.get_namespaced_custom_object(
                            GROUP, VERSION, namespace, plural, name
                        ),
                    )
                raise _wrap(exc, f"create {plural}/{namespace}/{name}") from None

        return cast(dict[str, Any], await _run(call, f"create {plural}/{namespace}/{name}"))

    async def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> bool:
        def call() -> bool:
            try:
                self._objects.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, body, _content_type=MERGE_PATCH
                )
                return True
            except ApiException as exc:
                if exc.status == NOT_FOUND:
                    return False
                raise _wrap(exc, f"patch {plural}/{namespace}/{name}") from None

        return bool(await _run(call, f"patch {plural}/{namespace}/{name}"))

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str = "",
    ) -> bool:
        """A merge patch of ``status``; with ``resource_version``, only of that version of the
        object (ConflictError otherwise)."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}

        def call() -> bool:
            try:
                self._objects.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    body,
                    _content_type=MERGE_PATCH,
                )
                return True
            except ApiException as exc:
                if exc.status == NOT_FOUND:
                    return False
                raise _wrap(exc, f"patch {plural}/{namespace}/{name}/status") from None

        return bool(await _run(call, f"patch {plural}/{namespace}/{name}/status"))

    # ---- ControllerRevisions (the revisions of rollouts) ---------------------------------

    async def list_revisions(self, label_selector: str) -> list[dict[str, Any]]:
        """Every ControllerRevision with the label, in every namespace."""

        def call() -> list[dict[str, Any]]:
            try:
                listing = self._apps.list_controller_revision_for_all_namespaces(
                    label_selector=label_selector, _preload_content=False
                )
            except ApiException as exc:
                raise _wrap(exc, "list controllerrevisions") from None
            items = json.loads(listing.data).get("items") or []  # type: ignore[attr-defined]
            return [item for item in items if isinstance(item, dict)]

        return cast(list[dict[str, Any]], await _run(call, "list controllerrevisions"))

    async def put_revision(self, namespace: str, body: dict[str, Any]) -> None:
        """Create a ControllerRevision, or set the revision number and annotations of the one
        with that name (its data never changes: the name is a hash of it)."""
        name = body["metadata"]["name"]

        def call() -> None:
            try:
                self._apps.create_namespaced_controller_revision(namespace, body)  # type: ignore[arg-type]
            except ApiException as exc:
                if exc.status != CONFLICT:
                    raise _wrap(exc, f"create controllerrevision {namespace}/{name}") from None
                patch = {
                    "metadata": {"annotations": body["metadata"].get("annotations") or {}},
                    "revision": body["revision"],
                }
                try:
                    self._apps.patch_namespaced_controller_revision(
                        name, namespace, patch, _content_type=MERGE_PATCH
                    )
                except ApiException as again:
                    raise _wrap(again, f"patch controllerrevision {namespace}/{name}") from None

        await _run(call, f"put controllerrevision {namespace}/{name}")

    async def delete_revision(self, namespace: str, name: str) -> None:
        def call() -> None:
            try:
                self._apps.delete_namespaced_controller_revision(name, namespace)
            except ApiException as exc:
                if exc.status != NOT_FOUND:
                    raise _wrap(exc, f"delete controllerrevision {namespace}/{name}") from None

        await _run(call, f"delete controllerrevision {namespace}/{name}")

    async def event(
        self,
        involved: dict[str, Any],
        *,
        reason: str,
        message: str,
        type: str = "Normal",
    ) -> None:
        """Record a Kubernetes Event on an object; failures are logged, never raised."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC).isoformat()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'flotta')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", API_VERSION),
                "kind": involved.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

        def call() -> None:
            try:
                self._core.create_namespaced_event(namespace, body)  # type: ignore[arg-type]
            except ApiException as exc:
                logger.warning(
                    "event %s on %s not recorded: %s", reason, meta.get("name"), exc.status
                )

        try:
            await _run(call, f"event {reason}")
        except TransportError as exc:
            logger.warning("event %s not recorded: %s", reason, exc)

"""Devices nobody is listening to: with no bridge replica alive, Online devices become Unknown.

Every bridge replica renews a presence lease while it serves devices
(:mod:`flotta.bridge.presence`). When none has been renewed for ``unknown_after`` seconds
(counted from the operator's start too), the operator marks each Online EdgeDevice Unknown,
its ``Online`` condition Unknown with reason ``BridgeUnavailable``: a status that nobody keeps
up to date must not say a device is fine, as Kubernetes marks nodes whose kubelet stopped
posting. The writes keep to the operator's device write rate. A bridge that comes back writes
each device's phase again from its heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from flotta.operator.context import Context
from flotta.operator.errors import TransportError
from flotta.operator.fleet_cache import Key
from flotta.operator.leader import lease_expired
from flotta.rate_limit import TokenBucket
from flotta.schemas.crd.common import BRIDGE_PRESENCE_LABEL, kube_time

logger = logging.getLogger(__name__)

CHECK_EVERY = 10.0
UNKNOWN_AFTER = 60.0  # seconds without a live bridge before devices become Unknown
REASON = "BridgeUnavailable"


def any_alive(leases: Iterable[dict[str, Any]], now: datetime) -> bool:
    """Whether one of the bridges' presence leases is still fresh (pure)."""
    return any(not lease_expired(lease.get("spec") or {}, now) for lease in leases)


def unknown_status(status: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The status patch that marks a device Unknown: the phase, and the bridge's ``Online``
    and ``Ready`` conditions (the other conditions as they are: a merge patch replaces the list
    whole)."""
    stamp = kube_time(now)
    conditions = [
        c for c in status.get("conditions") or () if c.get("type") not in ("Online", "Ready")
    ]
    conditions.extend(
        {
            "type": kind,
            "status": "Unknown",
            "reason": REASON,
            "message": "no bridge is alive to hear the device",
            "lastTransitionTime": stamp,
        }
        for kind in ("Online", "Ready")
    )
    return {"phase": "Unknown", "conditions": conditions}


class BridgeWatch:
    def __init__(
        self,
        context: Context,
        api: client.ApiClient,
        *,
        namespace: str,
        unknown_after: float = UNKNOWN_AFTER,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self._context = context
        self._leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.unknown_after = unknown_after
        self.check_every = check_every
        self._last_alive = time.monotonic()
        self._marked: set[Key] = set()
        self._writes = TokenBucket(
            context.settings.device_write_rate, context.settings.device_write_rate, time.monotonic()
        )

    async def run(self) -> None:
        context = self._context
        await context.synced.wait()
        self._last_alive = time.monotonic()
        while True:
            try:
                leases = await asyncio.to_thread(self._list)
            except (ApiException, HTTPError, OSError) as exc:
                context.metrics.errors.labels("bridge-presence").inc()
                logger.warning("cannot read the bridges' presence leases: %s", exc)
            else:
                now = time.monotonic()
                alive = any_alive(leases, datetime.now(UTC))
                context.metrics.bridges_alive.set(1 if alive else 0)
                if alive:
                    self._last_alive = now
                    self._marked.clear()
                elif now - self._last_alive >= self.unknown_after:
                    await self._mark_unknown()
            await asyncio.sleep(self.check_every)

    def _list(self) -> list[dict[str, Any]]:
        response = self._leases.list_namespaced_lease(
            self.namespace, label_selector=BRIDGE_PRESENCE_LABEL, _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(response.data).get("items", [])  # type: ignore[attr-defined]
        return items

    async def _mark_unknown(self) -> None:
        context = self._context
        for key, device in list(context.fleet.devices.items()):
            status = device.status
            if key in self._marked or status is None or status.phase != "Online":
                continue
            wait = self._writes.wait_time(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            self._writes.try_take(time.monotonic())
            namespace, name = key
            try:
                await context.kube.patch_status(
                    "edgedevices",
                    namespace,
                    name,
                    unknown_status(status.to_api(), datetime.now(UTC)),
                )
            except TransportError as exc:
                logger.warning("device %s/%s not marked Unknown: %s", namespace, name, exc)
                continue
            self._marked.add(key)
            context.metrics.marked_unknown.inc()
        if self._marked:
            logger.warning(
                "no bridge alive for %.0f s: %d device(s) marked Unknown",
                self.unknown_after,
                len(self._marked),
            )

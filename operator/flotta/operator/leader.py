"""One active operator: a coordination.k8s.io Lease, renewed while active; a standby waits
until the holder stops renewing and then takes over."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"
NOT_FOUND = 404
CONFLICT = 409


class LostLeadershipError(Exception):
    """The lease could not be renewed in time; another replica may be active."""


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(MICROTIME)


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_expired(spec: dict[str, Any], now: datetime) -> bool:
    """Whether a lease's holder stopped renewing (pure)."""
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or renewed + timedelta(seconds=duration) < now


class LeaderElection:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
    ) -> None:
        self._api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.leading = asyncio.Event()

    async def acquire(self) -> None:
        """Wait until this replica holds the lease."""
        while True:
            try:
                if await asyncio.to_thread(self._try_acquire):
                    break
            except Exception as exc:  # the API is unreachable: keep trying
                logger.warning("lease not acquired: %r", exc)
            await asyncio.sleep(self.duration / 3)
        self.leading.set()
        logger.info("leading as %s (lease %s/%s)", self.identity, self.namespace, self.name)

    async def keep(self) -> None:
        """Renew until renewing fails for a whole lease duration; then raise."""
        deadline = asyncio.get_running_loop().time() + self.duration
        while True:
            await asyncio.sleep(self.duration / 3)
            try:
                renewed = await asyncio.to_thread(self._try_acquire)
            except ApiException as exc:
                logger.warning("lease renewal failed: %s", exc.status)
                renewed = False
            except Exception as exc:  # the API is unreachable
                logger.warning("lease renewal failed: %r", exc)
                renewed = False
            now = asyncio.get_running_loop().time()
            if renewed:
                deadline = now + self.duration
            elif now >= deadline:
                self.leading.clear()
                raise LostLeadershipError(f"lease {self.namespace}/{self.name} lost")

    def release(self) -> None:
        """Give the lease up at shutdown so a standby takes over at once."""
        try:
            lease = cast(dict[str, Any], self._read())
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["renewTime"] = _format(datetime(1970, 1, 1, tzinfo=UTC))
                lease["spec"]["leaseDurationSeconds"] = 1
                self._api.replace_namespaced_lease(self.name, self.namespace, lease)  # type: ignore[arg-type]
        except ApiException as exc:
            logger.info("lease not released: %s", exc.status)

    def _read(self) -> dict[str, Any] | None:
        try:
            response = self._api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == NOT_FOUND:
                return None
            raise
        return cast(dict[str, Any], json.loads(response.data))  # type: ignore[attr-defined]

    def _try_acquire(self) -> bool:
        now = datetime.now(UTC)
        lease = self._read()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": _format(now),
        }
        try:
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**spec, "acquireTime": _format(now), "leaseTransitions": 0},
                }
                self._api.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
                return True
            current = lease.get("spec") or {}
            holder = current.get("holderIdentity")
            if holder != self.identity and holder and not lease_expired(current, now):
                return False
            if holder != self.identity:
                spec["acquireTime"] = _format(now)
                spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
            lease["spec"] = {**current, **spec}
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)  # type: ignore[arg-type]
            return True
        except ApiException as exc:
            if exc.status == CONFLICT:
                return False
            raise

"""The bridge shows it is alive: a coordination.k8s.io Lease per replica, renewed while the
replica serves devices (MQTT subscribed, NATS connected, EdgeDevices listed).

Without any renewed bridge lease the operator marks Online devices Unknown, as Kubernetes does
for nodes whose kubelet stops posting: a status nobody keeps up to date must not claim that a
device is fine. The calls are blocking (the Kubernetes client); run :meth:`renew` in a thread.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flotta.schemas.crd.common import BRIDGE_PRESENCE_LABEL

logger = logging.getLogger(__name__)

LEASE_DURATION = 30  # seconds a renewal counts for
RENEW_EVERY = 10.0
NOT_FOUND = 404
MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def lease_name(client_id: str) -> str:
    """A DNS-1123 name for the replica's lease."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", client_id.lower()).strip("-")
    return f"bridge-{cleaned or 'replica'}"[:63].rstrip("-")


class PresenceLease:
    def __init__(self, api: client.ApiClient, *, namespace: str, holder: str) -> None:
        self._api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.holder = holder
        self.name = lease_name(holder)

    def renew(self, now: datetime | None = None) -> None:
        """Create the lease, or set its renew time to now. Raises ApiException / OSError."""
        stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(MICROTIME)
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": stamp,
        }
        try:
            response = self._api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status != NOT_FOUND:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {BRIDGE_PRESENCE_LABEL: "true"},
                },
                "spec": {**spec, "acquireTime": stamp},
            }
            self._api.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
            return
        lease = json.loads(response.data)  # type: ignore[attr-defined]
        lease["spec"] = {**(lease.get("spec") or {}), **spec}
        self._api.replace_namespaced_lease(self.name, self.namespace, lease)

"""The audit log: ``audit.k8s.io/v1`` Events at the Metadata level, one JSON line per
request, as kube-apiserver's ``--audit-log-path`` writes them: who, which verb on which
object, the response code and the authorization decision with its reason."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from flotta.dev.kubeapi.rbac import Attributes, Decision


class AuditLog:
    """``audit.k8s.io/v1`` Events at the Metadata level, one JSON line each (as
    kube-apiserver's ``--audit-log-path`` writes them)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", buffering=1)

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


def _timestamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_event(
    request: web.Request,
    attributes: Attributes,
    decision: Decision,
    code: int,
    *,
    stage: str,
    received: float,
) -> dict[str, Any]:
    user = attributes.user
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "stage": stage,
        "requestURI": request.path_qs,
        "verb": attributes.verb,
        "user": {"username": user.name, "groups": list(user.groups)},
        "userAgent": request.headers.get("User-Agent", ""),
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": _timestamp(received),
        "stageTimestamp": _timestamp(time.time()),
        "annotations": {
            "authorization.k8s.io/decision": "allow" if decision.allowed else "forbid",
            "authorization.k8s.io/reason": decision.reason,
        },
    }
    if user.uid:
        event["user"]["uid"] = user.uid
    if attributes.resource_request:
        reference = {
            "resource": attributes.resource,
            "namespace": attributes.namespace,
            "name": attributes.name,
            "apiGroup": attributes.api_group,
            "apiVersion": attributes.api_version,
            "subresource": attributes.subresource,
        }
        event["objectRef"] = {key: value for key, value in reference.items() if value}
    return event

"""``rpm-ostree status --json``: the deployments, parsed strictly: pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flotta.agent.osupdate.errors import OstreeStatusError


@dataclass(frozen=True, slots=True)
class Deployment:
    checksum: str
    booted: bool = False
    staged: bool = False
    origin: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class OstreeStatus:
    deployments: tuple[Deployment, ...]

    @property
    def booted(self) -> Deployment | None:
        return next((d for d in self.deployments if d.booted), None)

    @property
    def pending(self) -> Deployment | None:
        """The deployment the next boot starts: listed before the booted one."""
        for deployment in self.deployments:
            if deployment.booted:
                return None
            return deployment
        return None

    def has(self, checksum: str) -> bool:
        return any(d.checksum == checksum for d in self.deployments)


def parse_status(text: str | bytes) -> OstreeStatus:
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OstreeStatusError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("deployments"), list):
        raise OstreeStatusError("no deployments list")
    return OstreeStatus(tuple(_deployment(item) for item in document["deployments"]))


def _deployment(item: Any) -> Deployment:
    if not isinstance(item, dict):
        raise OstreeStatusError("a deployment is not an object")
    checksum = item.get("checksum")
    if not isinstance(checksum, str) or not checksum:
        raise OstreeStatusError("a deployment has no checksum")
    return Deployment(
        checksum=checksum,
        booted=item.get("booted") is True,
        staged=item.get("staged") is True,
        origin=str(item.get("origin") or ""),
        version=str(item.get("version") or ""),
    )

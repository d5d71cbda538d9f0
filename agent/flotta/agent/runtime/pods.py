"""Reading Podman's pod summaries (``GET /pods/json`` entries). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def app_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    infra = pod.get("InfraId")
    return [c for c in pod.get("Containers") or [] if c.get("Id") != infra]


def short_name(pod: Mapping[str, Any], full: object) -> str:
    """Podman names a pod's containers ``<pod>-<container>``; the manifest's name."""
    text = str(full[0] if isinstance(full, list) and full else full)
    prefix = f"{pod.get('Name', '')}-"
    return text[len(prefix) :] if text.startswith(prefix) else text

"""Read the fleet from the Kubernetes API for the live view."""

from __future__ import annotations

from typing import Any

from flotta.dev.stack import dashboard, processes, supervision
from flotta.dev.stack.up import Stack
from flotta.schemas.crd.common import GROUP, VERSION


class FleetWatcher:
    def __init__(self, stack: Stack) -> None:
        from kubernetes import client

        self.stack = stack
        self.api = stack.api_client()
        self.custom = client.CustomObjectsApi(self.api)

    def _list(self, plural: str) -> list[dict[str, Any]]:
        listing: dict[str, Any] = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)  # type: ignore[assignment]
        items: list[dict[str, Any]] = listing["items"]
        return items

    def render(self) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            view = dashboard.render(
                self._list("edgedevices"),
                self._list("edgedevicesignedrequests"),
                self._list("edgeworkloads"),
            )
        except (ApiException, OSError) as exc:
            view = f"cannot read the fleet from the local Kubernetes API: {exc}"
        layout = self.stack.layout
        down = [r.name for r in processes.load(layout.processes) if not r.is_running()]
        if down:
            view += f"\n\nNOT RUNNING: {', '.join(down)} (see {layout.logs}; started again soon)"
        restarted = {name: n for name, n in supervision.restarts(layout).items() if n}
        if restarted:
            counts = ", ".join(f"{name} x{count}" for name, count in sorted(restarted.items()))
            view += f"\nstarted again: {counts}"
        return view + "\n\nCtrl-C stops everything (state is kept)."

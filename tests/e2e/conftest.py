"""End-to-end: the whole system as ``flotta dev up`` runs it (local Kubernetes API, Mosquitto,
nats-server, operator, bridge, devices), in a temporary state dir, stopped by PID."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from flotta.dev.stack.layout import StackLayout
from flotta.dev.stack.up import Stack, UpOptions
from flotta.schemas.crd.common import GROUP, VERSION
from tests.fixtures.kubetypes import obj


@dataclass
class RunningSystem:
    stack: Stack
    api: client.ApiClient

    @property
    def layout(self) -> StackLayout:
        return self.stack.layout

    @property
    def endpoints(self) -> dict[str, str]:
        document: dict[str, str] = json.loads(self.layout.endpoints.read_text())
        return document

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def device(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return obj(
            self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "edgedevices", name)
        )

    def devices(self) -> list[dict[str, Any]]:
        listing = obj(self.custom.list_cluster_custom_object(GROUP, VERSION, "edgedevices"))
        items: list[dict[str, Any]] = listing["items"]
        return items

    def workload(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return obj(
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "edgeworkloads", name
            )
        )


def wait_until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except client.exceptions.ApiException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def start_system(state_dir: Path, *, devices: int, real_agent: bool) -> Iterator[RunningSystem]:
    stack = Stack(
        StackLayout(state_dir),
        UpOptions(devices=devices, real_agent=real_agent, progress=lambda _: None),
    )
    try:
        stack.up()
        api = config.new_client_from_config(config_file=str(stack.layout.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            yield RunningSystem(stack, api)
        finally:
            api.close()  # type: ignore[no-untyped-call]
    finally:
        stopped = stack.stop_all()
        assert "kube-api" in stopped or not stopped


@pytest.fixture
def simulated_system(tmp_path: Path) -> Iterator[RunningSystem]:
    yield from start_system(tmp_path / "stack", devices=2, real_agent=False)


@pytest.fixture
def agent_system(tmp_path: Path, podman_env: object) -> Iterator[RunningSystem]:
    """The stack with the real agent (isolated Podman) and no simulated devices."""
    yield from start_system(tmp_path / "stack", devices=0, real_agent=True)


def restart_broker(
    system: RunningSystem,
    *,
    wipe_store: bool = False,
    down_for: float = 0.0,
    while_down: Callable[[], None] | None = None,
) -> None:
    """Stop the stack's Mosquitto by PID, optionally lose its store, and start it again."""
    from flotta.dev.stack import processes

    stack = system.stack
    record = next(r for r in stack.records if r.name == "mosquitto" and r.is_running())
    processes.stop(record, timeout=10)
    stack.records.remove(record)
    if wipe_store:
        import shutil

        shutil.rmtree(system.layout.mosquitto / "data", ignore_errors=True)
    if while_down is not None:
        while_down()
    time.sleep(down_for)
    stack.start_mosquitto(system.layout.ports(), only=("mosquitto",))

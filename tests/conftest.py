"""Shared fixtures and suite-wide rules. Server fixtures live in ``tests/fixtures/``, one module
per kind of server, registered here.

Every asynchronous test must leave no asyncio task behind (``no_leaked_tasks``), and the tests
under ``tests/e2e/`` carry the ``e2e`` marker (``-m "not e2e"`` runs the rest)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.brokers",  # fleet PKI, Mosquitto (mTLS + ACL), nats-server (JetStream)
    "tests.fixtures.kube",  # the local Kubernetes API
    "tests.fixtures.podman",  # isolated Podman with a locally built busybox image
    "tests.fixtures.rsyslog",  # rsyslogd in the foreground (TCP, TLS, UDP)
    "tests.fixtures.loki",  # a stand-in for Loki's push and query API (no Loki to run here)
    "tests.fixtures.images",  # the images make images builds (Debian base, control plane)
]

E2E = Path(__file__).resolve().parent / "e2e"


@pytest.fixture(autouse=True)
async def no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield  # a synchronous test runs no tasks on this loop
        return
    known = request.node.get_closest_marker("leaves_tasks")
    if known is not None:
        yield  # a third-party library's leak, named in the marker
        return
    before = asyncio.all_tasks()
    yield
    leaked: set[asyncio.Task[object]] = set()
    for _ in range(20):  # a task cancelled but not awaited (nats-py does that) ends meanwhile
        await asyncio.sleep(0.005)
        leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
        if not leaked:
            break
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left behind: {sorted(_describe(task) for task in leaked)}"


def _describe(task: asyncio.Task[object]) -> str:
    coroutine = task.get_coro()
    return f"{task.get_name()} ({getattr(coroutine, '__qualname__', coroutine)!s})"


# The tests that drive whole systems (Podman, the images, the agent packages, the end-to-end
# stack) carry the ``system`` marker: ``make test`` runs the others on two pytest-xdist
# workers, then these alone, one after another, as a device would see its machine (Podman's
# exit handling and the stacks' deadlines are not made for a busy neighbour).
SYSTEM_MARKERS = ("podman", "images", "e2e")
SYSTEM_FIXTURES = frozenset(
    {"podman_env", "clean_podman", "images_store", "base_image"}
    | {"control_plane_image", "broker_image"}
)
SYSTEM_DIRECTORIES = tuple(
    Path(__file__).resolve().parent / name for name in ("packages", "images", "deploy")
)


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parents = Path(str(item.fspath)).parents
        if E2E in parents:
            item.add_marker(pytest.mark.e2e)
        system = (
            any(item.get_closest_marker(name) for name in SYSTEM_MARKERS)
            or any(directory in parents for directory in SYSTEM_DIRECTORIES)
            or not SYSTEM_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
        )
        if system:
            item.add_marker(pytest.mark.system)

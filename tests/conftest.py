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


# Under pytest-xdist (``-n``, as ``make test`` runs), the tests that drive whole systems (Podman,
# the images, the agent packages, the end-to-end stack) share one worker, one after another:
# they build and use machine-wide things (image stores, the kube network) and are the ones a
# second heavy neighbour would slow past their deadlines. The rest spread over the workers.
SERIAL_GROUP = "system"
SERIAL_MARKERS = ("podman", "images", "e2e")
SERIAL_FIXTURES = frozenset(
    {"podman_env", "clean_podman", "images_store", "base_image"}
    | {"control_plane_image", "broker_image"}
)
SERIAL_DIRECTORIES = tuple(
    Path(__file__).resolve().parent / name for name in ("packages", "images", "deploy")
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parents = Path(str(item.fspath)).parents
        if E2E in parents:
            item.add_marker(pytest.mark.e2e)
        serial = (
            any(item.get_closest_marker(name) for name in SERIAL_MARKERS)
            or any(directory in parents for directory in SERIAL_DIRECTORIES)
            or not SERIAL_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
        )
        if serial:
            item.add_marker(pytest.mark.xdist_group(SERIAL_GROUP))

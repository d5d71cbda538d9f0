"""Fixtures for the operator's integration tests: the local Kubernetes API (subprocess) with
the CRDs, a real Mosquitto (``mosquitto_broker``), and the operator running in its own thread
and event loop (as it would in its own process), so tests can use blocking clients."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from flotta.operator.app import Operator, OperatorConfig
from flotta.operator.broker import BrokerSettings, enrolment_broker
from flotta.operator.context import OperatorSettings
from flotta.operator.policy import ApprovalPolicy
from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from tests.fixtures.brokers import TestBroker
from tests.fixtures.kubeprocess import LocalKube, running_kube

NAMESPACE = "fleet"
ENROLMENT_NAMESPACE = "flotta"


class OperatorThread:
    """An Operator in a thread with its own event loop."""

    def __init__(self, cfg: OperatorConfig) -> None:
        self.operator = Operator(cfg)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="operator", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the operator did not start")
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test
            self.error = exc
            self._started.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.operator.start()
            self._started.set()
            waiter = asyncio.ensure_future(self.operator.wait())
            stopper = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for future in (waiter, stopper):
                future.cancel()
            await asyncio.gather(waiter, stopper, return_exceptions=True)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
                self.error = waiter.exception()
        finally:
            await self.operator.stop()

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.operator.metrics.registry.get_sample_value(name, labels or {})
        return float(value or 0.0)


@dataclass
class Stack:
    kube: LocalKube
    api: client.ApiClient
    broker: TestBroker
    config: OperatorConfig
    operators: list[OperatorThread] = field(default_factory=list)

    @property
    def objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def start_operator(self, **changes: Any) -> OperatorThread:
        running = OperatorThread(replace(self.config, **changes))
        running.start()
        self.operators.append(running)
        return running


def add_device(stack: Stack, name: str, labels: dict[str, str]) -> None:
    """An EdgeDevice with an empty spec, as an administrator creates one."""
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        EdgeDevice.PLURAL,
        {
            "apiVersion": API_VERSION,
            "kind": EdgeDevice.KIND,
            "metadata": {"name": name, "labels": labels},
            "spec": {},
        },
    )


def add_device_set(stack: Stack, name: str, spec: dict[str, Any]) -> None:
    stack.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        EdgeDeviceSet.PLURAL,
        {
            "apiVersion": API_VERSION,
            "kind": EdgeDeviceSet.KIND,
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def patch_device_status(stack: Stack, name: str, status: dict[str, Any]) -> None:
    """Merge ``status`` into an EdgeDevice's status, as the bridge or enrolment would."""
    stack.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        EdgeDevice.PLURAL,
        name,
        {"status": status},
        _content_type="application/merge-patch+json",
    )


def wait_until(check: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def local_kube(tmp_path: Path) -> Iterator[tuple[LocalKube, client.ApiClient]]:
    with running_kube(tmp_path / "kube", NAMESPACE, ENROLMENT_NAMESPACE) as started:
        yield started


@contextlib.contextmanager
def running_stack(
    kube: LocalKube, api: client.ApiClient, mosquitto_broker: TestBroker
) -> Iterator[Stack]:
    """The stack over a started API; stops every operator it started at the end."""
    operator_credentials = mosquitto_broker.operator()
    fleet_broker = BrokerSettings(
        host=mosquitto_broker.host,
        port=mosquitto_broker.services_port,
        ca=mosquitto_broker.ca_path,
        cert=operator_credentials.cert,
        key=operator_credentials.key,
    )
    cfg = OperatorConfig(
        broker=fleet_broker,
        enrolment=enrolment_broker(
            fleet_broker, host=mosquitto_broker.host, port=mosquitto_broker.enrolment_port
        ),
        pki_dir=mosquitto_broker.pki.root,
        kubeconfig=kube.kubeconfig,
        settings=OperatorSettings(
            enrolment_namespace=ENROLMENT_NAMESPACE,
            policy=ApprovalPolicy(),
            status_interval=0.2,
        ),
        health_port=0,
        lease_namespace=ENROLMENT_NAMESPACE,
        identity="operator-a",
        reload_crl=mosquitto_broker.reload,
    )
    result = Stack(kube, api, mosquitto_broker, cfg)
    try:
        yield result
    finally:
        for running in result.operators:
            running.stop()


@pytest.fixture
def stack(
    local_kube: tuple[LocalKube, client.ApiClient], mosquitto_broker: TestBroker
) -> Iterator[Stack]:
    with running_stack(*local_kube, mosquitto_broker) as result:
        yield result

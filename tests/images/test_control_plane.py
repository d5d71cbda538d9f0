"""The control plane from its image: the operator and the bridge run in containers of the
image ``make images`` builds (Podman, the host's network, every server on loopback) against
the local stack's Kubernetes API, Mosquitto and nats-server, which run on this machine as
``flotta dev up`` runs them. They come up, answer ``/healthz`` and ``/readyz``, and do their
job: simulated devices enrol (the operator in the container signs their certificates), the
sample workload reaches them, and their EdgeDevices say so (the bridge writes that).

Certificates and the kubeconfig are mounted as files, as Secret volumes with ``fsGroup``
give them (group 10001, mode 0440); the operator's state volume is prepared by the init
container of ``deploy/kubernetes/operator.yaml``, run from the same image as it is there.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flotta.bridge.share_group import GROUP_ENV, new_group
from flotta.dev.images import PodmanStore
from flotta.dev.stack.layout import StackLayout
from flotta.dev.stack.up import Stack, UpOptions
from tests.deploy.manifests import find
from tests.e2e.conftest import RunningSystem, wait_until
from tests.e2e.test_simulated_fleet import converged
from tests.fixtures.images import Container, run_container

UID = 10001  # runAsUser, runAsGroup and fsGroup of the manifests
DEVICES = 2


def secret_volume(directory: Path, files: dict[str, Path]) -> Path:
    """``files`` as a Secret volume with ``fsGroup: 10001`` and mode 0440 holds them."""
    directory.mkdir(mode=0o750)
    os.chown(directory, 0, UID)
    for name, source in files.items():
        shutil.copyfile(source, directory / name)
        os.chown(directory / name, 0, UID)
        (directory / name).chmod(0o440)
    return directory


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            code: int = answer.status
            return code
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def answers(port: int, path: str) -> bool:
    return status(port, path) == 200


def wait_for(
    check: Callable[[], Any], *, timeout: float, what: str, containers: list[Container]
) -> Any:
    """``wait_until``, failing with the containers' logs."""
    try:
        return wait_until(check, timeout=timeout, what=what)
    except AssertionError as error:
        logs = "\n".join(f"--- {c.name}\n{c.logs()[-3000:]}" for c in containers)
        raise AssertionError(f"{error}\n{logs}") from None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The stack without its operator and bridge (and without telemetry or an agent)."""
    stack = Stack(
        StackLayout(tmp_path / "stack"),
        UpOptions(devices=DEVICES, real_agent=False, progress=lambda _: None),
    )
    stack.layout.root.mkdir(mode=0o700)
    try:
        ports = stack.layout.ports()
        stack.ensure_pki()
        stack.start_kube_api(ports)
        stack.apply_resources()
        stack.start_mosquitto(ports)
        stack.start_nats(ports)
        yield stack
    finally:
        stack.stop_all()


def init_script() -> str:
    """The operator's init container, as deploy/kubernetes/operator.yaml has it."""
    pod = find("Deployment", "flotta-operator")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["/bin/sh", "-c"]
    script: str = init["args"][0]
    return script


@pytest.mark.timeout(420)
def test_operator_and_bridge_images_enrol_devices_and_deliver_a_workload(
    stack: Stack, images_store: PodmanStore, control_plane_image: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    layout, ports = stack.layout, stack.layout.ports()
    pki, clients = layout.pki, layout.pki / "clients"
    kubeconfig = secret_volume(tmp_path / "kubeconfig", {"kubeconfig": layout.kubeconfig})
    operator_pki = secret_volume(
        tmp_path / "operator-pki",
        {
            "ca.crt": pki / "ca.crt",
            "ca.key": pki / "ca.key",
            "internal-operator.crt": clients / "internal-operator.crt",
            "internal-operator.key": clients / "internal-operator.key",
        },
    )
    bridge_tls = secret_volume(
        tmp_path / "bridge-tls",
        {
            "ca.crt": pki / "ca.crt",
            "internal-bridge.crt": clients / "internal-bridge.crt",
            "internal-bridge.key": clients / "internal-bridge.key",
        },
    )
    state = tmp_path / "operator-state"  # the PersistentVolumeClaim, group-owned by fsGroup
    state.mkdir()
    os.chown(state, UID, UID)

    containers: list[Container] = []
    try:
        init = run_container(
            images_store,
            control_plane_image,
            "-c",
            init_script(),
            name=f"flotta-operator-pki-{ports.kube}",
            mounts={operator_pki: "/etc/flotta/operator-pki", state: "/var/lib/flotta:rw"},
            entrypoint="/bin/sh",
        )
        containers.append(init)
        assert init.wait(timeout=60) == 0, init.logs()
        key = state / "pki" / "ca.key"
        assert key.stat().st_uid == UID
        assert oct(key.stat().st_mode & 0o777) == "0o600"

        operator = run_container(
            images_store,
            control_plane_image,
            "--log-level=INFO",
            "operator",
            "run",
            "--kubeconfig=/etc/flotta/kube/kubeconfig",
            "--pki-dir=/var/lib/flotta/pki",
            f"--broker-port={ports.mqtt_services}",
            f"--enrolment-port={ports.mqtt_enrolment}",
            "--auto-approve=default",
            f"--health-port={ports.operator_health}",
            "--log-format=json",
            name=f"flotta-operator-{ports.kube}",
            mounts={kubeconfig: "/etc/flotta/kube", state: "/var/lib/flotta:rw"},
        )
        containers.append(operator)
        bridge = run_container(
            images_store,
            control_plane_image,
            "--log-level=INFO",
            "bridge",
            "--ca=/etc/flotta/bridge/ca.crt",
            "--cert=/etc/flotta/bridge/internal-bridge.crt",
            "--key=/etc/flotta/bridge/internal-bridge.key",
            f"--mqtt-port={ports.mqtt_services}",
            "--client-id=flotta-bridge-0",
            f"--nats-url=tls://127.0.0.1:{ports.nats}",
            "--kubeconfig=/etc/flotta/kube/kubeconfig",
            f"--health-port={ports.bridge_health}",
            "--log-format=json",
            name=f"flotta-bridge-{ports.kube}",
            mounts={kubeconfig: "/etc/flotta/kube", bridge_tls: "/etc/flotta/bridge"},
            env={GROUP_ENV: new_group()},
        )
        containers.append(bridge)

        for port, component in (
            (ports.operator_health, "operator"),
            (ports.bridge_health, "bridge"),
        ):
            for path in ("/healthz", "/readyz"):
                wait_for(
                    functools.partial(answers, port, path),
                    timeout=90,
                    what=f"the {component}'s {path}",
                    containers=containers,
                )
        came_up = time.monotonic() - started

        stack.start_simulator(ports)
        api = stack.api_client()
        try:
            system = RunningSystem(stack, api)
            wait_for(
                lambda: converged(system, DEVICES),
                timeout=240,
                what=f"{DEVICES} simulated devices enrolled, online and converged",
                containers=containers,
            )
            device = system.device("sim-00000")
            assert device["metadata"]["labels"]["flotta/member-of"] == "shop-floor"
            assert [w["phase"] for w in device["status"]["workloads"]] == ["Running"]
        finally:
            api.close()  # type: ignore[no-untyped-call]

        for container in (operator, bridge):
            assert container.running(), container.logs()
            # The processes as the host sees them (this machine has no user 10001).
            user = images_store.podman("top", container.name, "huser", "hgroup").split()
            assert set(user[2:]) == {str(UID)}, user  # after the header
        # The operator signed the devices' certificates into its state volume.
        assert list((state / "pki" / "issued").iterdir())
        print(
            f"control plane up in {came_up:.1f} s; converged in {time.monotonic() - started:.1f} s"
        )
    finally:
        for container in containers:
            container.remove()

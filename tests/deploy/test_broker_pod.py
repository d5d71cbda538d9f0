"""The broker pod of deploy/kubernetes/broker.yaml, run from the image ``make images`` builds
(``flotta-broker``, Debian's Mosquitto): the rendered install's ConfigMap, the Secrets
``flotta-broker-tls`` and ``flotta-crl`` of docs/deploying.md and the StatefulSet, applied
to the local Kubernetes API, and both Mosquitto containers run by the kubelet stand-in
(tests/deploy/kubelet.py) with the command, user, fsGroup, volumes and mounts the
StatefulSet gives them. On the host network, only the listeners change: loopback and free
ports instead of 8883/8884/8885 on every address.

A device with a fleet certificate exchanges messages over mutual TLS with the operator's
and the bridge's identities, a bootstrap certificate reaches the operator on the enrolment
broker, a certificate from another CA is refused, and the store is written on the claim's
volume. The crl-reloader sidecar (control-plane image) shares the Mosquittos' process
namespace: once the mounted CRL names the device, it signals them and the device is refused
(polling every second here instead of every 5: a timing knob, as the ports are).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from flotta.dev.images import PodmanStore
from flotta.dev.nats_server import free_port
from flotta.schemas.topics import DeviceTopic, device_topic
from tests.deploy.kubelet import Kubelet, PodmanRunner, Running
from tests.deploy.manifests import (
    BASE,
    BROKER_LISTENERS,
    NAMESPACE,
    kustomization,
    loopback_listeners,
)
from tests.fixtures.brokers import ClientCredentials, TestBroker, new_fleet_pki
from tests.fixtures.kube import KubeEndpoint
from tests.fixtures.mqtt_probe import ACCEPTED, NOT_AUTHORIZED, MqttProbe, ProbeRefusedError

IMAGE = "flotta-broker"  # as the manifests name it
LOOPBACK = "127.0.0.1"
DEVICE = "cam-00001"


@dataclass
class BrokerPod:
    ports: dict[int, int]  # manifest port -> the port here
    credentials: TestBroker  # mints certificates of the fleet's CA (it runs no broker)
    pods: dict[str, Running]
    data: Path  # the claim's volume
    crl: Path  # crl.pem in the Secret volume flotta-crl
    root: Path

    def probe(self, manifest_port: int, who: ClientCredentials, client_id: str) -> MqttProbe:
        return MqttProbe(LOOPBACK, self.ports[manifest_port], who, client_id)


def broker_objects(ports: dict[int, int]) -> list[dict[str, Any]]:
    """The rendered install's namespace and broker objects, the listeners moved to loopback."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    chosen = []
    for obj in yaml.safe_load_all(rendered):
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap" and name.startswith("flotta-broker-config-"):
            obj["data"] = loopback_listeners(obj["data"], ports)
            chosen.append(obj)
        elif obj["kind"] == "StatefulSet" and name == "flotta-broker":
            containers = obj["spec"]["template"]["spec"]["containers"]
            [reloader] = [c for c in containers if c["name"] == "crl-reloader"]
            assert "--interval=5" in reloader["args"]
            reloader["args"] = [a.replace("--interval=5", "--interval=1") for a in reloader["args"]]
            chosen.append(obj)
        elif obj["kind"] == "Namespace" or (
            obj["kind"] in ("ServiceAccount", "StatefulSet") and name == "flotta-broker"
        ):
            chosen.append(obj)
    assert len(chosen) == 4
    return chosen


def create_secrets(core: Any, root: Path) -> TestBroker:
    """``flotta-broker-tls`` and ``flotta-crl`` with the keys docs/deploying.md gives them."""
    pki = new_fleet_pki(root / "pki")
    files = {
        "flotta-broker-tls": {
            "ca.crt": pki.ca_cert_path,
            "server.crt": pki.server_cert_path,
            "server.key": pki.server_key_path,
        },
        "flotta-crl": {"crl.pem": pki.crl_path},
    }
    for name, keys in files.items():
        core.create_namespaced_secret(
            NAMESPACE,
            {
                "metadata": {"name": name},
                "stringData": {key: path.read_text() for key, path in keys.items()},
            },
        )
    return TestBroker(pki, root / "clients")


def wait_connected(probe: MqttProbe, pods: dict[str, Running], timeout: float = 30) -> None:
    """Connect as soon as the broker listens (its container may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe.connect()
            return
        except ProbeRefusedError:
            for name, running in pods.items():
                assert running.process.poll() is None, f"{name}: {running.log_text()}"
            assert time.monotonic() < deadline, {n: r.log_text() for n, r in pods.items()}
            time.sleep(0.2)


@pytest.fixture
def broker_pod(
    kube_api: KubeEndpoint,
    images_store: PodmanStore,
    broker_image: str,
    control_plane_image: str,
    tmp_path: Path,
) -> Iterator[BrokerPod]:
    tags = {i["name"]: i["newTag"] for i in kustomization()["images"]}
    images = {IMAGE: broker_image, "flotta-control-plane": control_plane_image}
    for name, built in images.items():
        assert built.endswith(f"/{name}:{tags[name]}"), f"the manifests run {name}:{tags[name]}"
    ports = {p: free_port(LOOPBACK) for listened in BROKER_LISTENERS.values() for p in listened}
    body = yaml.safe_dump_all(broker_objects(ports))
    kube_api.kubectl("apply", "-f", "-", stdin=body, timeout=60)
    admin = kube_api.api_client()
    credentials = create_secrets(client.CoreV1Api(admin), tmp_path)
    kubelet = Kubelet(
        admin, tmp_path / "pods", api_url=kube_api.url, ca_path=kube_api.ca_path or Path()
    )
    containers = kubelet.pod("StatefulSet", NAMESPACE, "flotta-broker", "flotta-broker-0", hosts={})
    runner = PodmanRunner(tmp_path / "pods", dict(images_store.env))
    pods: dict[str, Running] = {}
    try:
        for container in containers:  # the first holds the shared process namespace
            image = "flotta-control-plane" if container.name == "crl-reloader" else IMAGE
            assert container.image == f"{image}:{tags[image]}", container.image
            assert (container.uid, container.gid, container.groups) == (1883, 1883, [1883])
            assert container.share_process_namespace
            pods[container.name] = runner.start(container)
        assert set(pods) == {"mosquitto", "mosquitto-enrolment", "crl-reloader"}
        volumes = tmp_path / "pods" / "flotta-broker-0" / "volumes"
        yield BrokerPod(
            ports, credentials, pods, volumes / "data", volumes / "crl" / "crl.pem", tmp_path
        )
    finally:
        for running in reversed(pods.values()):
            running.stop()
        runner.close()


def test_the_broker_pod_serves_the_fleet_over_mutual_tls(broker_pod: BrokerPod) -> None:
    started = time.monotonic()
    fleet = broker_pod.credentials
    device_credentials = fleet.device(DEVICE)
    device = broker_pod.probe(8883, device_credentials, DEVICE)
    operator = broker_pod.probe(8885, fleet.operator(), "flotta-operator-0")
    bridge = broker_pod.probe(8885, fleet.bridge(), "flotta-bridge-0")
    enrolling = broker_pod.probe(8884, fleet.bootstrap("factory-2026", listed=False), "cam-9")
    enrolment_operator = broker_pod.probe(8884, fleet.operator(), "flotta-operator-0")
    probes = [device, operator, bridge, enrolling, enrolment_operator]
    try:
        wait_connected(device, broker_pod.pods)
        wait_connected(enrolment_operator, broker_pod.pods)
        operator.connect()
        bridge.connect()
        enrolling.connect()
        # the bridge reads what the device reports
        assert bridge.subscribe("flotta/devices/+/status") == [1]
        status = device_topic(DEVICE, DeviceTopic.STATUS)
        assert device.publish(status, b'{"probe": 1}') == 0
        assert bridge.wait_for(status).payload == b'{"probe": 1}'
        # the device gets the operator's retained desired state
        desired = device_topic(DEVICE, DeviceTopic.DESIRED)
        assert operator.publish(desired, b'{"version": 1}', retain=True) in ACCEPTED
        assert device.subscribe(desired) == [1]
        received = device.wait_for(desired)
        assert (received.payload, received.retain) == (b'{"version": 1}', True)
        # the ACL the ConfigMap gives: a device writes nothing of another's
        assert (
            device.publish(device_topic("cam-00002", DeviceTopic.STATUS), b"{}") == NOT_AUTHORIZED
        )
        # enrolment: a bootstrap certificate reaches the operator on the enrolment broker
        assert enrolment_operator.subscribe("flotta/enrol/+/request") == [1]
        assert enrolling.publish("flotta/enrol/cam-9/request", b"csr") == 0
        assert enrolment_operator.wait_for("flotta/enrol/cam-9/request").payload == b"csr"
    finally:
        for probe in probes:
            probe.close()

    # revoked: the operator rewrites the Secret flotta-crl, the kubelet the mounted file (a
    # rename, as its atomic writer does); the reloader signals both Mosquittos
    fleet.pki.revoke(device_credentials.serial, note="lost")
    fleet.pki.write_crl()
    replace_as_the_kubelet_does(broker_pod.crl, fleet.pki.crl_path.read_bytes())
    deadline = time.monotonic() + 20
    while not refused_once(broker_pod.probe(8883, device_credentials, DEVICE)):
        assert time.monotonic() < deadline, broker_pod.pods["crl-reloader"].log_text()
        time.sleep(0.2)
    assert not refused_once(broker_pod.probe(8885, fleet.bridge(), "flotta-bridge-0"))
    revoked_at = time.monotonic() - started

    # a certificate of another CA (the device trusts the fleet's): refused on every listener
    foreign = TestBroker(new_fleet_pki(broker_pod.root / "foreign"), broker_pod.root / "foreign")
    stranger = foreign.device(DEVICE)
    strangers = {
        port: MqttProbe(LOOPBACK, broker_pod.ports[port], stranger, DEVICE, ca=str(fleet.ca_path))
        for port in (8883, 8885, 8884)
    }
    try:
        with ThreadPoolExecutor(len(strangers)) as pool:  # each refusal takes about a second
            refused = dict(
                zip(strangers, pool.map(MqttProbe.refused, strangers.values()), strict=True)
            )
    finally:
        for probe in strangers.values():
            probe.close()
    assert refused == {8883: True, 8885: True, 8884: True}
    log = broker_pod.pods["mosquitto"].log_text()
    assert re.search(r"mosquitto version 2\.0\.\d+ running", log), log
    assert "certificate verify failed" in log, log

    # Mosquitto saves its store on SIGTERM, on the claim's volume (fsGroup 1883)
    broker_pod.pods["mosquitto"].stop()
    assert broker_pod.pods["mosquitto"].process.returncode == 0, log
    assert (broker_pod.data / "mosquitto.db").stat().st_size > 0
    print(f"broker pod scenario in {time.monotonic() - started:.1f} s (revoked: {revoked_at:.1f})")


def refused_once(probe: MqttProbe) -> bool:
    try:
        return probe.refused()
    finally:
        probe.close()


def replace_as_the_kubelet_does(path: Path, data: bytes) -> None:
    """New content under the same name, mode and owner, by a rename in the directory."""
    status = path.stat()
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_bytes(data)
    os.chown(temporary, status.st_uid, status.st_gid)
    temporary.chmod(status.st_mode & 0o7777)
    temporary.replace(path)

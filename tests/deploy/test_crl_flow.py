"""The CRL path of a cluster install, end to end with real parts: the operator's publisher
writes the CRL into a Secret of the local Kubernetes API; a stand-in for the kubelet copies
the Secret's key into the broker's mounted directory as a Secret volume does; the reloader
sidecar sees the change and sends SIGHUP to a real Mosquitto that runs the cluster
configuration (deploy/kubernetes/broker); the revoked device is refused, others are not."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from flotta.dev.nats_server import free_port
from flotta.mosquitto.cluster import CONFIG_DIR, CRL_DIR, DATA_DIR, TLS_DIR, cluster_files
from flotta.mosquitto.openssl import OPENSSL_CONFIG_NAME
from flotta.mosquitto.process import RELOAD_MARK, MosquittoProcess
from flotta.mosquitto.reloader import Reloader
from flotta.operator.crl_secret import CRL_KEY, CrlPublisher, CrlSecret, SecretRef
from flotta.pki.files import KEY_MODE, write_atomic
from flotta.pki.keys import (
    build_csr,
    certificate_to_pem,
    csr_to_pem,
    generate_key,
    private_key_to_pem,
)
from flotta.pki.store import PkiStore
from tests.fixtures.brokers import LOOPBACK, ClientCredentials
from tests.fixtures.kube import KubeEndpoint
from tests.fixtures.mqtt_probe import MqttProbe, ProbeRefusedError

SECRET = SecretRef("flotta", "flotta-crl")

pytestmark = pytest.mark.slow


@dataclass
class ClusterBroker:
    """Mosquitto with the cluster configuration, its mounts re-rooted under a directory."""

    root: Path
    port: int
    process: MosquittoProcess | None = None

    def path(self, mounted: Path) -> Path:
        return self.root / mounted.relative_to("/")


def start_broker(root: Path, pki: PkiStore, crl_pem: bytes) -> ClusterBroker:
    broker = ClusterBroker(root, free_port(LOOPBACK))
    for directory in (CONFIG_DIR, TLS_DIR, CRL_DIR, DATA_DIR):
        broker.path(directory).mkdir(parents=True)
    for name, source in (
        ("ca.crt", pki.ca_cert_path),
        ("server.crt", pki.server_cert_path),
        ("server.key", pki.server_key_path),
    ):
        write_atomic(broker.path(TLS_DIR) / name, source.read_bytes(), mode=KEY_MODE)
    write_atomic(broker.path(CRL_DIR) / "crl.pem", crl_pem)
    files = cluster_files()
    config = files["mosquitto.conf"]
    for mounted in (CONFIG_DIR, TLS_DIR, CRL_DIR, DATA_DIR):
        config = config.replace(f" {mounted}", f" {broker.path(mounted)}")
    config = config.replace("listener 8883 0.0.0.0", f"listener {broker.port} {LOOPBACK}")
    if os.geteuid() == 0:  # as root Mosquitto would switch to its user, who cannot read here
        config = "user root\n" + config
    (broker.path(CONFIG_DIR) / "mosquitto.conf").write_text(config)
    (broker.path(CONFIG_DIR) / "acl").write_text(files["acl"])
    openssl_config = broker.path(CONFIG_DIR) / OPENSSL_CONFIG_NAME
    openssl_config.write_text(files[OPENSSL_CONFIG_NAME])
    broker.process = MosquittoProcess(
        broker.path(CONFIG_DIR) / "mosquitto.conf",
        log_path=root / "mosquitto.log",
        openssl_config=openssl_config,  # as the StatefulSet's OPENSSL_CONF
    )
    broker.process.start()
    return broker


def device(pki: PkiStore, device_id: str, directory: Path) -> ClientCredentials:
    key = generate_key()
    cert = pki.sign_device_csr(
        csr_to_pem(build_csr(key, device_id)), device_id=device_id, namespace="fleet"
    )
    cert_path, key_path = directory / f"{device_id}.crt", directory / f"{device_id}.key"
    write_atomic(key_path, private_key_to_pem(key), mode=KEY_MODE)
    write_atomic(cert_path, certificate_to_pem(cert))
    return ClientCredentials(device_id, cert_path, key_path, pki.ca_cert_path, cert.serial_number)


def _crl_of(core: client.CoreV1Api) -> bytes | str:
    """The CRL key of the Secret, base64 as the API keeps it."""
    secret = core.read_namespaced_secret(SECRET.name, SECRET.namespace)
    assert secret.data is not None
    return secret.data[CRL_KEY]


def kubelet_sync(core: client.CoreV1Api, target: Path) -> None:
    """What the kubelet does for a Secret volume item: the key's bytes, replaced atomically."""
    write_atomic(target, base64.b64decode(_crl_of(core)))


def connects(broker: ClusterBroker, credentials: ClientCredentials) -> bool:
    probe = MqttProbe(LOOPBACK, broker.port, credentials, credentials.identity)
    try:
        probe.connect()
    except ProbeRefusedError:
        return False
    finally:
        probe.close()
    return True


def wait_for_reload(process: MosquittoProcess, before: int) -> None:
    deadline = time.monotonic() + 5
    while process.log_text().count(RELOAD_MARK) <= before:
        assert time.monotonic() < deadline, "Mosquitto did not reload"
        time.sleep(0.05)


@pytest.fixture
def core(kube_api: KubeEndpoint, fleet_pki: PkiStore) -> client.CoreV1Api:
    """The local API with the Secret the admin creates at install time."""
    core = client.CoreV1Api(kube_api.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=SECRET.namespace)))
    core.create_namespaced_secret(
        SECRET.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=SECRET.name),
            data={CRL_KEY: base64.b64encode(fleet_pki.crl_path.read_bytes()).decode()},
        ),
    )
    return core


def test_a_revocation_reaches_the_broker_through_the_secret(
    core: client.CoreV1Api, fleet_pki: PkiStore, tmp_path: Path
) -> None:
    broker = start_broker(tmp_path / "broker", fleet_pki, base64.b64decode(_crl_of(core)))
    assert broker.process is not None
    try:
        pid = broker.process.pid
        assert pid is not None
        mounted_crl = broker.path(CRL_DIR) / "crl.pem"
        reloader = Reloader([mounted_crl, broker.path(TLS_DIR) / "server.crt"], lambda: [pid])
        creds = tmp_path / "creds"
        creds.mkdir()
        leaving, staying = device(fleet_pki, "d1", creds), device(fleet_pki, "d2", creds)
        assert connects(broker, leaving)

        # The operator deletes d1: revoke, then reload_crl = publish into the Secret.
        assert fleet_pki.revoke(leaving.serial, note="device d1 deleted")
        fleet_pki.write_crl()
        CrlPublisher(fleet_pki, CrlSecret(core.api_client, SECRET)).reload()
        assert not reloader.check(), "nothing changed on the broker's side yet"
        assert connects(broker, leaving)

        reloads = broker.process.log_text().count(RELOAD_MARK)
        kubelet_sync(core, mounted_crl)
        assert reloader.check()
        wait_for_reload(broker.process, reloads)
        assert not connects(broker, leaving)
        assert connects(broker, staying)
    finally:
        broker.process.stop()

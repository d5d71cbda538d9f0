"""deploy/kubernetes, run: the install applied to the local Kubernetes API (which enforces
RBAC), the PKI Secrets made with the commands of docs/deploying.md, and the operator and
the bridge run by a kubelet stand-in (tests/deploy/kubelet.py) with exactly the service
accounts, tokens, Secrets and arguments the manifests give them. A device enrols, gets its
workload, sends an event and is deleted (its certificate revoked into the CRL Secret)
without one refused request; the audit log then shows that every verb on every resource the
manifests grant was needed by a call the components made (but for those NOT_EXERCISED
names), and taking one rule away makes the bridge fail with a 403.

On one host network, the test's overlay (tests/deploy/overlay below) changes only ports and
listen addresses, and the NATS URL (as docs/deploying.md's overlay does); the kubelet
stand-in runs one replica of each.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from flotta.dev.kubeapi.rbac import Attributes, Policy, service_account_user
from flotta.dev.nats_server import NatsServer, free_port
from flotta.dev.simulator.provision import CERT_NAME, KEY_NAME, device_dir
from flotta.pki.store import PkiStore
from flotta.schemas.codec import encode
from flotta.schemas.crd.common import GROUP
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import DeviceEvent
from tests.deploy.kubelet import HostRunner, Kubelet, PodmanRunner, Running
from tests.deploy.manifests import (
    BASE,
    NAMESPACE,
    ROOT,
    broker_files,
    container,
    kustomization,
    loopback_listeners,
    objects,
)
from tests.fixtures.brokers import ClientCredentials, TestBroker
from tests.fixtures.kube import KubeEndpoint
from tests.fixtures.mqtt_probe import MqttProbe
from tests.fixtures.sources import source_path

# generous: the first container run may wait for make images to build the image
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FLEET = "fleet"
BATCH = "factory-2026"
DEVICE = "cam-00000"
SERVICE_HOSTS = {
    "flotta-broker.flotta.svc": "127.0.0.1",
    "flotta-broker-internal.flotta.svc": "127.0.0.1",
}
ACCOUNTS = {"operator": "flotta-operator", "bridge": "flotta-bridge"}
IMAGE = "flotta-control-plane"  # as the manifests name it
BROKER_IMAGE = "flotta-broker"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def docs_commands(heading: str) -> list[str]:
    """The shell commands of one section of docs/deploying.md (its ```sh blocks)."""
    text = (ROOT / "docs" / "deploying.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def substituted(args: list[str], values: dict[str, str]) -> list[str]:
    """``--flag=value`` arguments with some values replaced; each flag must be there."""
    result, seen = [], set()
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in values:
            result.append(f"{flag}={values[flag]}")
            seen.add(flag)
        else:
            result.append(arg)
    assert seen == values.keys(), f"not in the base: {values.keys() - seen}"
    return result


def overlay(
    directory: Path,
    broker: TestBroker,
    nats: NatsServer,
    health: dict[str, int],
    *,
    broker_pod: bool,
) -> Path:
    """Host-network ports and addresses, and the NATS URL, over the unchanged base; with
    ``broker_pod``, the broker ConfigMap's listeners on ``broker``'s loopback ports."""
    operator = container("flotta-operator", "operator").spec["args"]
    bridge = container("flotta-bridge", "bridge").spec["args"]
    loopback = "127.0.0.1"
    patches = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "flotta-operator"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "operator",
                                "args": [
                                    *substituted(
                                        operator,
                                        {
                                            "--broker-port": str(broker.services_port),
                                            "--enrolment-port": str(broker.enrolment_port),
                                            "--health-host": loopback,
                                            "--health-port": str(health["operator"]),
                                        },
                                    ),
                                    f"--auto-approve={FLEET}",  # as docs/deploying.md's overlay
                                ],
                            }
                        ]
                    }
                }
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "flotta-bridge"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "bridge",
                                "args": substituted(
                                    bridge,
                                    {
                                        "--mqtt-port": str(broker.services_port),
                                        "--health-host": loopback,
                                        "--health-port": str(health["bridge"]),
                                    },
                                ),
                                "env": [{"name": "NATS_URL", "value": nats.url}],
                            }
                        ]
                    }
                }
            },
        },
    ]
    directory.mkdir()
    site: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, directory)],
        "patches": [{"patch": yaml.safe_dump(p)} for p in patches],
    }
    if broker_pod:
        ports = {8883: broker.port, 8885: broker.services_port, 8884: broker.enrolment_port}
        (directory / "broker").mkdir()
        for name, text in loopback_listeners(broker_files(), ports).items():
            (directory / "broker" / name).write_text(text)
        site["configMapGenerator"] = [
            {
                "name": "flotta-broker-config",
                "behavior": "replace",
                "files": [f"broker/{name}" for name in broker_files()],
            }
        ]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(site))
    return directory


def healthy(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@dataclass
class Install:
    kube: KubeEndpoint
    admin: client.ApiClient
    broker: TestBroker
    pki: PkiStore
    audit: Path
    pods: dict[str, Running]
    health: dict[str, int]
    root: Path

    def custom(self) -> Any:
        return client.CustomObjectsApi(self.admin)

    def core(self) -> Any:
        return client.CoreV1Api(self.admin)


def run_docs_pki_commands(kube: KubeEndpoint, workdir: Path) -> None:
    """docs/deploying.md step 2 as written, with the address devices reach here (127.0.0.1)."""
    workdir.mkdir()
    (workdir / "deploy").symlink_to(ROOT / "deploy")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "KUBECONFIG": str(kube.kubeconfig),
    }
    commands = docs_commands("## 2. Create the PKI and its Secrets")
    assert any("create secret generic flotta-bridge-group" in c for c in commands)
    for command in commands:
        command = command.replace("--address 203.0.113.10", "--address 127.0.0.1")
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"


def images_runner(request: pytest.FixtureRequest, root: Path) -> PodmanRunner:
    """Podman with the control-plane image ``make images`` builds (tests/fixtures/images.py),
    or the store ``$FLOTTA_IMAGES_STORE`` names, where that fixture is not in the tree."""
    try:
        store = request.getfixturevalue("images_store")
        built = str(request.getfixturevalue("control_plane_image"))
        tags = {i["name"]: i["newTag"] for i in kustomization()["images"]}
        broker = str(request.getfixturevalue("broker_image"))
        for name, image in ((IMAGE, built), (BROKER_IMAGE, broker)):
            expected = f"{name}:{tags[name]}"
            assert image.endswith(f"/{expected}"), f"the manifests run {expected}, not {image}"
        return PodmanRunner(root, dict(store.env))
    except pytest.FixtureLookupError:
        directory = os.environ.get("FLOTTA_IMAGES_STORE")
        if not directory:
            pytest.skip("no control-plane image: tests/fixtures/images.py is not in this tree")
        names = ("containers.conf", "storage.conf", "registries.conf")
        variables = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF")
        env = {var: str(Path(directory) / name) for var, name in zip(variables, names, strict=True)}
        return PodmanRunner(root, env)


@pytest.fixture(params=["host", pytest.param("container", marks=pytest.mark.images)])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> HostRunner | PodmanRunner:
    """The operator and the bridge from this checkout (``host``, with the host's Mosquitto)
    or from the built image (``container``, with the broker pod from the broker image)."""
    if request.param == "host":
        if os.geteuid() != 0:
            pytest.skip("the host runs need root: a private mount namespace, overlays, setpriv")
        return HostRunner(tmp_path / "pods")
    return images_runner(request, tmp_path / "pods")


@pytest.fixture
def install(
    runner: HostRunner | PodmanRunner,
    kube_api_factory: Any,
    nats_server: NatsServer,
    tmp_path: Path,
) -> Iterator[Install]:
    """The install up, its operator and bridge running."""
    started = time.monotonic()
    audit = tmp_path / "audit.log"
    kube: KubeEndpoint = kube_api_factory(audit_log=audit)
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    kube.kubectl("apply", "-f", "-", stdin=rendered, timeout=60)
    run_docs_pki_commands(kube, tmp_path / "admin")
    pki = PkiStore(tmp_path / "admin" / "pki")
    broker = TestBroker(pki, tmp_path / "broker")  # its ports and credentials
    broker_pod = isinstance(runner, PodmanRunner)
    if not broker_pod:
        broker.start()
    health = {"operator": free_port(), "bridge": free_port()}
    site = overlay(tmp_path / "overlay", broker, nats_server, health, broker_pod=broker_pod)
    # as docs/deploying.md: the base, then a site overlay over it (a strategic merge patch)
    applied = kube.kubectl("apply", "-k", str(site), timeout=60).stdout
    assert "deployment.apps/flotta-operator configured" in applied
    admin = kube.api_client()
    core: Any = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": FLEET}})
    for sample in ("edgedeviceset.yaml", "edgeworkload.yaml"):
        body = yaml.safe_load((ROOT / "deploy" / "samples" / sample).read_text())
        body["metadata"]["namespace"] = FLEET
        client.CustomObjectsApi(admin).create_namespaced_custom_object(
            GROUP, "v1alpha1", FLEET, body["kind"].lower() + "s", body
        )
    kubelet = Kubelet(admin, tmp_path / "pods", api_url=kube.url, ca_path=kube.ca_path or Path())
    pods: dict[str, Running] = {}
    try:
        if broker_pod:
            start_broker_pod(kubelet, runner, pods, broker)
        *init, operator = kubelet.pod(
            "Deployment",
            NAMESPACE,
            "flotta-operator",
            "flotta-operator-7d4b9c-x2x4q",
            hosts=SERVICE_HOSTS,
        )
        for step in init:
            runner.run(step)
        pods["operator"] = runner.start(operator)
        [bridge] = kubelet.pod(
            "StatefulSet", NAMESPACE, "flotta-bridge", "flotta-bridge-0", hosts=SERVICE_HOSTS
        )
        pods["bridge"] = runner.start(bridge)
        for name, port in health.items():
            running = pods[name]

            def up(port: int = port, running: Running = running) -> bool:
                return healthy(port, "/readyz") or running.process.poll() is not None

            wait_for(f"{name} /readyz", up, timeout=60)
            assert running.process.poll() is None, running.log_text()
        print(f"install up in {time.monotonic() - started:.1f} s")
        yield Install(kube, admin, broker, pki, audit, pods, health, tmp_path)
    finally:
        for running in pods.values():
            running.stop()
        if isinstance(runner, PodmanRunner):
            runner.close()
        broker.stop()


def start_broker_pod(
    kubelet: Kubelet,
    runner: HostRunner | PodmanRunner,
    pods: dict[str, Running],
    broker: TestBroker,
) -> None:
    """``flotta-broker-0``'s Mosquittos from the broker image, with the ConfigMap, Secrets and
    volumes the StatefulSet gives them; not its CRL reloader: the stand-in writes Secret
    volumes once, so a revocation reaches the CRL Secret but not the broker's file
    (test_broker_pod.py and test_crl_flow.py follow it further)."""
    for item in kubelet.pod("StatefulSet", NAMESPACE, "flotta-broker", "flotta-broker-0", hosts={}):
        if item.name != "crl-reloader":
            pods[item.name] = runner.start(item)

    def listening() -> bool:
        for name in ("mosquitto", "mosquitto-enrolment"):
            assert pods[name].process.poll() is None, pods[name].log_text()
        ports = (broker.port, broker.services_port, broker.enrolment_port)
        return all(accepts(port) for port in ports)

    wait_for("the broker pod's listeners", listening, timeout=30)


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def log_messages(running: Running) -> list[str]:
    """The messages of a component's JSON log lines (--log-format=json)."""
    messages = []
    for line in running.log_text().splitlines():
        if line.startswith("{"):
            messages.append(str(json.loads(line).get("message", "")))
    return messages


def sa_requests(audit: Path) -> dict[str, list[tuple[Attributes, str]]]:
    """The service accounts' requests in the audit log: attributes and decision."""
    found: dict[str, list[tuple[Attributes, str]]] = {name: [] for name in ACCOUNTS}
    by_user = {f"system:serviceaccount:{NAMESPACE}:{sa}": c for c, sa in ACCOUNTS.items()}
    for line in audit.read_text().splitlines():
        event = json.loads(line)
        component = by_user.get(event["user"]["username"])
        if component is None:
            continue
        user = service_account_user(NAMESPACE, ACCOUNTS[component])
        ref = event.get("objectRef")
        decision = event["annotations"]["authorization.k8s.io/decision"]
        if ref is None:
            attributes = Attributes(
                user, event["verb"], resource_request=False, path=event["requestURI"].split("?")[0]
            )
        else:
            attributes = Attributes(
                user,
                event["verb"],
                namespace=ref.get("namespace", ""),
                api_group=ref.get("apiGroup", ""),
                resource=ref.get("resource", ""),
                subresource=ref.get("subresource", ""),
                name=ref.get("name", ""),
            )
        found[component].append((attributes, decision))
    return found


@dataclass(frozen=True)
class Permission:
    """One verb on one resource, as one rule of a component's role grants it."""

    component: str
    kind: str  # Role or ClusterRole
    role: str
    index: int  # the rule's
    group: str
    resource: str
    verb: str

    def rules_without(self, rule: dict[str, Any]) -> list[dict[str, Any]]:
        """The rule split into what it grants but this (same resourceNames)."""
        names = {"resourceNames": rule["resourceNames"]} if rule.get("resourceNames") else {}
        return [
            {"apiGroups": [group], "resources": [resource], "verbs": [verb], **names}
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
            if (group, resource, verb) != (self.group, self.resource, self.verb)
        ]


def manifest_policy(without: Permission | None = None) -> Policy:
    """The manifests' roles and bindings, ``without`` one permission."""
    kinds = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for obj in objects():
        kind = obj["kind"]
        if kind not in by_kind:
            continue
        if without is not None and (kind, obj["metadata"]["name"]) == (without.kind, without.role):
            rules = [r for i, r in enumerate(obj["rules"]) if i != without.index]
            obj = {**obj, "rules": rules + without.rules_without(obj["rules"][without.index])}
        by_kind[kind].append(obj)
    return Policy(*(by_kind[kind] for kind in kinds))


def permissions() -> list[Permission]:
    """Every verb on every resource the components' roles grant."""
    result = []
    for obj in objects():
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        component = next((c for c, sa in ACCOUNTS.items() if sa == obj["metadata"]["name"]), None)
        if component is None:
            continue
        for index, rule in enumerate(obj["rules"]):
            result += [
                Permission(component, obj["kind"], obj["metadata"]["name"], index, g, r, v)
                for g in rule["apiGroups"]
                for r in rule["resources"]
                for v in rule["verbs"]
            ]
    return result


# Granted for calls the scenario does not make, and why (each one is in test_rbac.py's table
# of the calls the code makes).
NOT_EXERCISED = {
    ("operator", "apps", "controllerrevisions", "patch"): "revisions of a rolloutPolicy",
    ("operator", "apps", "controllerrevisions", "delete"): "revisions of a rolloutPolicy",
    ("operator", GROUP, "edgedevices", "get"): "read back after a create conflict",
    ("operator", GROUP, "edgedevicesignedrequests", "get"): "read back after a create conflict",
}


def test_the_install_runs_with_exactly_the_permissions_it_grants(install: Install) -> None:
    started = time.monotonic()
    custom, core = install.custom(), install.core()
    bootstrap = install.broker.bootstrap(BATCH)
    log = (install.root / "simulator.log").open("wb")
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flotta.cli",
            "dev",
            "simulate",
            "--state-dir",
            str(install.root / "devices"),
            "--devices",
            "1",
            "--prefix",
            "cam",
            "--mqtt-port",
            str(install.broker.port),
            "--enrolment-port",
            str(install.broker.enrolment_port),
            "--ca",
            str(install.pki.ca_cert_path),
            "--bootstrap-cert",
            str(bootstrap.cert),
            "--bootstrap-key",
            str(bootstrap.key),
            "--namespace",
            FLEET,
            "--set",
            "shop-floor",
            "--heartbeat",
            "5",
            "--connect-spread",
            "0",
            "--metrics-interval",
            "0",
        ],
        env={**os.environ, "PYTHONPATH": source_path()},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            try:
                device = custom.get_namespaced_custom_object(
                    GROUP, "v1alpha1", FLEET, "edgedevices", DEVICE
                )
            except client.ApiException:
                return False
            conditions = (device.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for("the device to enrol and run its workload", ready, timeout=90)
        workload = wait_for(
            "the workload's status",
            lambda: (
                custom.get_namespaced_custom_object(
                    GROUP, "v1alpha1", FLEET, "edgeworkloads", "counter"
                )
                .get("status", {})
                .get("runningDevices")
            ),
        )
        assert workload == 1
        request = custom.get_namespaced_custom_object(
            GROUP, "v1alpha1", NAMESPACE, "edgedevicesignedrequests", DEVICE
        )
        assert request["spec"]["approved"] is True
        # A device event becomes a Kubernetes Event (the bridge's events create): sent as the
        # device, once the simulator that holds its session is gone.
        simulator.terminate()
        simulator.wait(15)
        directory = device_dir(install.root / "devices", DEVICE)
        credentials = ClientCredentials(
            DEVICE, directory / CERT_NAME, directory / KEY_NAME, install.pki.ca_cert_path, 0
        )
        probe = MqttProbe("127.0.0.1", install.broker.port, credentials, DEVICE)
        try:
            probe.connect()
            event = DeviceEvent(id="e-1", time=datetime.now(UTC), reason="DoorOpened")
            assert probe.publish(device_topic(DEVICE, DeviceTopic.EVENTS), encode(event)) == 0
        finally:
            probe.close()
        wait_for(
            "the device's Event",
            lambda: [
                e for e in core.list_namespaced_event(FLEET).items if e.reason == "DoorOpened"
            ],
        )
        crl_before = core.read_namespaced_secret("flotta-crl", NAMESPACE).data
        custom.delete_namespaced_custom_object(GROUP, "v1alpha1", FLEET, "edgedevices", DEVICE)
        wait_for(
            "the revocation in the CRL Secret",
            lambda: (
                core.read_namespaced_secret("flotta-crl", NAMESPACE).data != crl_before
                and "revoked.json" in core.read_namespaced_secret("flotta-crl", NAMESPACE).data
            ),
        )
        wait_for(
            "the device to go",
            lambda: (
                not custom.list_namespaced_custom_object(GROUP, "v1alpha1", FLEET, "edgedevices")[
                    "items"
                ]
            ),
        )
    finally:
        simulator.terminate()
        simulator.wait(15)
        log.close()
    print(f"scenario in {time.monotonic() - started:.1f} s")

    for name, running in install.pods.items():
        assert running.process.poll() is None, f"{name} stopped: {running.log_text()[-3000:]}"
        assert "Forbidden" not in running.log_text(), name
    wait_for(
        "the bridge to renew its presence lease (every 10 s)",
        lambda: any(
            (a.verb, a.resource) == ("update", "leases")
            for a, _ in sa_requests(install.audit)["bridge"]
        ),
        timeout=30,
    )
    requests = sa_requests(install.audit)
    for component, made in requests.items():
        assert made, f"{component} made no request with its token"
        refused = [a for a, decision in made if decision != "allow"]
        assert not refused, f"{component} was refused: {refused}"

    # Least privilege: each verb on each resource granted is the only grant of a request the
    # component made, but for those NOT_EXERCISED names.
    full = manifest_policy()
    unexercised = set()
    for permission in permissions():
        reduced = manifest_policy(without=permission)
        needed = [
            a
            for a, _ in requests[permission.component]
            if full.authorize(a).allowed and not reduced.authorize(a).allowed
        ]
        if not needed:
            unexercised.add(
                (permission.component, permission.group, permission.resource, permission.verb)
            )
    assert unexercised == NOT_EXERCISED.keys()


def test_taking_a_needed_rule_away_breaks_the_bridge_with_a_403(install: Install) -> None:
    assert not [a for a, decision in sa_requests(install.audit)["bridge"] if decision != "allow"]
    install.kube.kubectl(
        "patch",
        "role",
        "flotta-bridge",
        "-n",
        NAMESPACE,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/rules/0"}]',
    )
    message = (
        'is forbidden: User "system:serviceaccount:flotta:flotta-bridge" cannot get resource'
        ' "leases" in API group "coordination.k8s.io" in the namespace "flotta"'
    )
    wait_for(
        "the bridge's refused lease renewal",
        # the message is inside the Status body the log line quotes, its quotes escaped
        lambda: any(
            message in line.replace('\\"', '"') for line in log_messages(install.pods["bridge"])
        ),
        timeout=30,
    )
    refused = [a for a, decision in sa_requests(install.audit)["bridge"] if decision == "forbid"]
    assert {(a.verb, a.resource) for a in refused} == {("get", "leases")}


def test_the_docs_overlay_applied_over_the_base_changes_only_its_fields(
    kube_api: KubeEndpoint, tmp_path: Path
) -> None:
    """``kubectl apply -k deploy/kubernetes``, then docs/deploying.md's overlay, client-side:
    kubectl sends strategic merge patches, which must merge the pod template's lists by key."""
    from flotta.mosquitto.cluster import main as render_cluster

    kube_api.kubectl("apply", "-k", str(BASE), timeout=60)
    text = (ROOT / "docs" / "deploying.md").read_text()
    site = next(
        b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: Kustomization" in b
    )
    directory = tmp_path / "my-fleet"
    directory.mkdir()
    relative = os.path.relpath(BASE, directory)
    (directory / "kustomization.yaml").write_text(
        site.replace("../flotta/deploy/kubernetes", relative)
    )
    render_cluster([str(directory / "broker"), "--observer", "grafana"])
    applied = kube_api.kubectl("apply", "-k", str(directory), timeout=60).stdout
    assert "statefulset.apps/flotta-bridge configured" in applied
    apps: Any = client.AppsV1Api(kube_api.api_client())
    bridge = apps.read_namespaced_stateful_set("flotta-bridge", NAMESPACE).spec.template.spec
    [container_spec] = bridge.containers
    env = {e.name: e for e in container_spec.env}
    assert env["NATS_URL"].value == "nats://nats.messaging.svc:4222"
    assert env["POD_NAME"].value_from.field_ref.field_path == "metadata.name"
    assert env["FLOTTA_BRIDGE_GROUP"].value_from.secret_key_ref.name == "flotta-bridge-group"
    assert container_spec.image == "registry.example.com/flotta/control-plane:0.1.0"
    assert [m.mount_path for m in container_spec.volume_mounts] == ["/etc/flotta/bridge", "/tmp"]
    operator = apps.read_namespaced_deployment("flotta-operator", NAMESPACE).spec.template.spec
    assert operator.containers[0].args[-1] == "--auto-approve=factory"
    assert operator.containers[0].args[:-1] == container("flotta-operator", "operator").spec["args"]
    assert [c.name for c in operator.init_containers] == ["pki"]

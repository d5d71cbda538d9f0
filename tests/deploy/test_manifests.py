"""deploy/kubernetes: every file parses, the kustomization lists every file, the pods are
locked down (non-root, read-only root file system, no privilege escalation, no capabilities)
and bounded (requests and limits), references between objects resolve."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flotta.mosquitto.cluster import CONFIG_DIR, cluster_files
from flotta.mosquitto.openssl import OPENSSL_CONF, OPENSSL_CONFIG_NAME
from flotta.schemas.topics import ENROLMENT_PORT, FLEET_PORT, SERVICES_PORT
from tests.deploy.manifests import (
    BASE,
    CRDS,
    NAMESPACE,
    containers,
    find,
    kustomization,
    load,
    manifest_files,
    objects,
    workloads,
)

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def test_every_manifest_parses_into_named_objects() -> None:
    assert manifest_files(), "deploy/kubernetes has no manifests"
    for path in manifest_files():
        documents = load(path)
        assert documents, f"{path.name} is empty"
        for obj in documents:
            assert {"apiVersion", "kind", "metadata"} <= obj.keys(), path.name
            assert obj["metadata"].get("name"), f"{path.name}: an object without a name"
            assert "namespace" not in obj["metadata"], (
                f"{path.name}: {obj['kind']} sets its namespace; kustomize sets it"
            )


def test_kustomization_lists_every_file_and_the_crds() -> None:
    base = kustomization()
    assert base["namespace"] == NAMESPACE
    resources = base["resources"]
    assert "../crds" in resources
    listed = {r for r in resources if not r.startswith("..")}
    assert listed == {p.name for p in manifest_files()}
    generated = [f for g in base.get("configMapGenerator", []) for f in g.get("files", [])]
    assert sorted(generated) == sorted(
        str(p.relative_to(BASE)) for p in (BASE / "broker").iterdir()
    )
    crds = kustomization(CRDS)
    assert sorted(crds["resources"]) == sorted(p.name for p in CRDS.glob("*.yaml"))


def test_broker_files_are_what_flotta_mosquitto_renders() -> None:
    for name, text in cluster_files().items():
        assert (BASE / "broker" / name).read_text() == text, (
            f"deploy/kubernetes/broker/{name} is stale: "
            "run python -m flotta.mosquitto.cluster deploy/kubernetes/broker"
        )


def test_no_object_is_defined_twice() -> None:
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects()]
    assert len(keys) == len(set(keys))


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [KUBECTL, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for expected in [
        ("Namespace", NAMESPACE),
        ("CustomResourceDefinition", "edgedevices.management.project-flotta.io"),
        ("Deployment", "flotta-operator"),
        ("StatefulSet", "flotta-bridge"),
        ("StatefulSet", "flotta-broker"),
    ]:
        assert expected in kinds
    assert len(rendered) == len(objects()) + len(list(CRDS.glob("*.yaml"))) + 1  # + ConfigMap
    cluster_scoped = ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")
    for doc in rendered:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    broker = next(
        d
        for d in rendered
        if d["metadata"]["name"] == "flotta-broker" and "spec" in d and d["kind"] == "StatefulSet"
    )
    config = next(v for v in broker["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    generated = next(d for d in rendered if d["kind"] == "ConfigMap")
    assert config["configMap"]["name"] == generated["metadata"]["name"]  # hashed name
    images = {
        c["image"]
        for d in rendered
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
        + d["spec"]["template"]["spec"].get("initContainers", [])
    }
    assert all(":" in image for image in images), images  # every image has a tag


def test_pods_run_as_non_root_with_the_restricted_profile() -> None:
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        context = pod["securityContext"]
        name = workload["metadata"]["name"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] > 0, name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("hostNetwork", False) is False
        assert pod.get("hostPID", False) is False


def test_every_container_is_locked_down_and_bounded() -> None:
    for c in containers():
        where = f"{c.workload}/{c.name}"
        context = c.spec["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["capabilities"]["drop"] == ["ALL"], where
        assert "add" not in context["capabilities"], where
        assert context.get("privileged", False) is False, where
        resources = c.spec["resources"]
        for key in ("cpu", "memory"):
            assert key in resources["requests"], f"{where}: no {key} request"
            assert key in resources["limits"], f"{where}: no {key} limit"


def test_long_running_containers_have_probes_on_declared_ports() -> None:
    for c in containers():
        if c.init or c.name == "crl-reloader":
            continue
        ports = {p["name"]: p["containerPort"] for p in c.spec.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            spec = c.spec[probe]
            action = spec.get("httpGet") or spec.get("tcpSocket")
            assert action is not None, f"{c.workload}/{c.name} {probe}"
            assert action["port"] in ports, f"{c.workload}/{c.name} {probe} port"


def test_mounts_volumes_and_referenced_objects_exist() -> None:
    generated = {g["name"] for g in kustomization().get("configMapGenerator", [])}
    # Created by the admin with the fleet PKI (docs/deploying.md), not by the manifests.
    admin_secrets = {"flotta-operator-pki", "flotta-bridge-tls", "flotta-broker-tls", "flotta-crl"}
    for c in containers():
        for path, volume in c.mounts().items():
            assert volume, f"{c.workload}/{c.name}: nothing to mount at {path}"
            if "secret" in volume:
                assert volume["secret"]["secretName"] in admin_secrets
            if "configMap" in volume:
                assert volume["configMap"]["name"] in generated
            if "persistentVolumeClaim" in volume:
                find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    docs = (BASE.parents[1] / "docs" / "deploying.md").read_text()
    for secret in admin_secrets:
        assert secret in docs, f"docs/deploying.md does not say how to create {secret}"


def test_services_select_pods_and_statefulsets_have_their_service() -> None:
    labels = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads()
    }
    for workload in workloads():
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels[workload["metadata"]["name"]].items()
    for service in (o for o in objects() if o["kind"] == "Service"):
        selected = [
            name
            for name, pod_labels in labels.items()
            if service["spec"]["selector"].items() <= pod_labels.items()
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        owner = next(w for w in workloads() if w["metadata"]["name"] == selected[0])
        pod = owner["spec"]["template"]["spec"]
        ports = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]
    for workload in workloads():
        if workload["kind"] == "StatefulSet":
            service = find("Service", workload["spec"]["serviceName"])
            assert service["spec"]["clusterIP"] == "None"


def test_devices_reach_the_fleet_and_enrolment_brokers_and_only_them() -> None:
    service = find("Service", "flotta-broker")
    assert service["spec"]["type"] in ("LoadBalancer", "NodePort")
    assert [p["port"] for p in service["spec"]["ports"]] == [FLEET_PORT, ENROLMENT_PORT]
    internal = find("Service", "flotta-broker-internal")
    assert internal["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in internal["spec"]["ports"]] == [SERVICES_PORT]
    # The services listener (client ids of the client's choosing) admits the control plane.
    policy = find("NetworkPolicy", "flotta-broker-services")
    rules = policy["spec"]["ingress"]
    open_ports = {p["port"] for rule in rules if "from" not in rule for p in rule["ports"]}
    assert open_ports == {FLEET_PORT, ENROLMENT_PORT}
    [restricted] = [rule for rule in rules if "from" in rule]
    assert [p["port"] for p in restricted["ports"]] == [SERVICES_PORT]
    allowed = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in restricted["from"]
    }
    assert allowed == {"flotta-operator", "flotta-bridge"}
    for name in allowed:
        pod = find("StatefulSet" if name == "flotta-bridge" else "Deployment", name)
        assert pod["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name


def test_broker_pod_shares_its_process_namespace_with_the_reloader() -> None:
    broker = find("StatefulSet", "flotta-broker")
    pod = broker["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    assert pod["automountServiceAccountToken"] is False
    users = {c.get("securityContext", {}).get("runAsUser") for c in pod["containers"]}
    assert users == {None}, "both containers run as the pod's user (to be allowed to signal)"
    crl = next(v for v in pod["volumes"] if v["name"] == "crl")
    assert crl["secret"]["secretName"] == "flotta-crl"
    for c in pod["containers"]:
        for mount in c["volumeMounts"]:
            assert "subPath" not in mount, "a subPath mount is never updated by the kubelet"


def test_mosquitto_gets_the_openssl_settings_from_its_config_map() -> None:
    broker = find("StatefulSet", "flotta-broker")
    pod = broker["spec"]["template"]["spec"]
    [mosquitto] = [c for c in pod["containers"] if c["name"] == "mosquitto"]
    env = {e["name"]: e.get("value") for e in mosquitto.get("env", [])}
    mounts = {m["name"]: m["mountPath"] for m in mosquitto["volumeMounts"]}
    assert env[OPENSSL_CONF] == str(CONFIG_DIR / OPENSSL_CONFIG_NAME)
    assert mounts["config"] == str(CONFIG_DIR)
    assert OPENSSL_CONFIG_NAME in cluster_files()


def test_operator_runs_two_replicas_and_the_bridge_a_statefulset() -> None:
    operator = find("Deployment", "flotta-operator")
    assert operator["spec"]["replicas"] == 2
    bridge = find("StatefulSet", "flotta-bridge")
    assert bridge["spec"]["replicas"] >= 2
    env = {e["name"]: e for e in bridge["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_the_overlay_in_the_docs_builds(tmp_path: Path) -> None:
    """docs/deploying.md's overlay: image, replaced broker files, NATS URL, approval, NodePort."""
    import os
    import re

    from flotta.mosquitto.cluster import main as render_cluster

    text = (BASE.parents[1] / "docs" / "deploying.md").read_text()
    overlay = next(
        b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: Kustomization" in b
    )
    directory = tmp_path / "my-fleet"
    directory.mkdir()
    relative = os.path.relpath(BASE, directory)
    (directory / "kustomization.yaml").write_text(
        overlay.replace("../flotta/deploy/kubernetes", relative)
    )
    render_cluster([str(directory / "broker"), "--observer", "grafana"])
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = {
        (d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d
    }
    bridge = rendered[("StatefulSet", "flotta-bridge")]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in bridge["containers"][0]["env"]}
    assert env["NATS_URL"] == "nats://nats.messaging.svc:4222"
    assert "fieldRef" in str(bridge["containers"][0]["env"])  # POD_NAME kept
    operator = rendered[("Deployment", "flotta-operator")]["spec"]["template"]["spec"]
    assert "--auto-approve=factory" in operator["containers"][0]["args"]
    assert operator["containers"][0]["image"].startswith("registry.example.com/")
    assert rendered[("Service", "flotta-broker")]["spec"]["type"] == "NodePort"
    config = next(d for (kind, _), d in rendered.items() if kind == "ConfigMap")
    assert "user observer:grafana" in config["data"]["acl"]
    # behavior: replace drops what the overlay does not name: it must name every file
    [generator] = kustomization()["configMapGenerator"]
    assert sorted(config["data"]) == sorted(Path(f).name for f in generator["files"])
    broker = rendered[("StatefulSet", "flotta-broker")]["spec"]["template"]["spec"]
    assert {c["image"] for c in broker["containers"]} == {
        "registry.example.com/flotta/broker:0.1.0",
        "registry.example.com/flotta/control-plane:0.1.0",
    }

"""Rendering a workload for Podman 4.3's kube play. Pure."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotta.agent.runtime import InvalidManifestError, WorkloadSpec, render, spec_hash
from flotta.agent.runtime.manifest import podman_secret_name, secret_prefix
from flotta.agent.runtime.spec import SPEC_HASH_LABEL, STOP_TIMEOUT_LABEL, WORKLOAD_LABEL

FILES = Path("/run/flotta/files")

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: whatever
  labels: {app: web}
  annotations: {note: kept}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: localhost/flotta/busybox:latest
    env:
    - {name: DEVICE_ID, value: spoofed}
    - {name: MODE, value: prod}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    envFrom:
    - secretRef: {name: creds}
    ports:
    - {containerPort: 8080}
    - {containerPort: 80, hostPort: 18080}
    volumeMounts:
    - {name: tls, mountPath: /tls}
    - {name: conf, mountPath: /etc/app}
  volumes:
  - name: tls
    secret:
      secretName: creds
      items: [{key: cert, path: certs/tls.crt, mode: 0400}]
  - name: conf
    configMap: {name: app-config}
"""
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {app.conf: "level=debug\\n"}
binaryData: {blob: AAEC}
"""


def full_spec(**overrides: Any) -> WorkloadSpec:
    values: dict[str, Any] = {
        "name": "web",
        "pod_yaml": POD,
        "labels": {"team": "edge"},
        "annotations": {"owner": "ops"},
        "configmaps": [CONFIGMAP],
        "secrets": {"creds": {"password": b"hunter2", "cert": b"CERT"}},
        "env": {"DEVICE_ID": "dev-1"},
        "export_dir": Path("/var/lib/flotta/export/web"),
    }
    values.update(overrides)
    return WorkloadSpec(**values)


def documents(kube_yaml: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(kube_yaml))


def test_pod_is_named_and_labelled_for_the_workload() -> None:
    spec = full_spec()
    rendered = render(spec, files_root=FILES)
    configmap, pod = documents(rendered.kube_yaml)
    assert configmap["kind"] == "ConfigMap"
    assert pod["metadata"]["name"] == "web"
    labels = pod["metadata"]["labels"]
    assert labels[WORKLOAD_LABEL] == "web"
    assert labels[SPEC_HASH_LABEL] == spec_hash(spec) == rendered.spec_hash
    assert labels[STOP_TIMEOUT_LABEL] == "3"
    assert rendered.stop_timeout == 3
    assert labels["app"] == "web"
    assert labels["team"] == "edge"
    assert pod["metadata"]["annotations"] == {"note": "kept", "owner": "ops"}
    assert rendered.restart_policy == "Always"


def test_injected_env_wins_and_secrets_become_workload_podman_secrets() -> None:
    rendered = render(full_spec(), files_root=FILES)
    container = documents(rendered.kube_yaml)[1]["spec"]["containers"][0]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["DEVICE_ID"] == {"name": "DEVICE_ID", "value": "dev-1"}
    assert env["MODE"]["value"] == "prod"
    podman_name = podman_secret_name("web", "creds")
    assert podman_name.startswith(secret_prefix("web"))
    assert env["PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == podman_name
    assert container["envFrom"] == [{"secretRef": {"name": podman_name}}]
    (secret,) = rendered.secrets
    assert secret.name == podman_name
    decoded = {k: base64.b64decode(v) for k, v in json.loads(secret.data).items()}
    assert decoded == {"password": b"hunter2", "cert": b"CERT"}


def test_ports_without_host_port_are_not_published() -> None:
    container = documents(render(full_spec(), files_root=FILES).kube_yaml)[1]["spec"]["containers"][
        0
    ]
    assert container["ports"] == [{"containerPort": 80, "hostPort": 18080}]


def test_probes_are_left_to_the_agent() -> None:
    probes = (
        "    livenessProbe: {httpGet: {port: 8080, path: /healthz}}\n"
        "    readinessProbe: {tcpSocket: {port: 8080}}\n"
        "    startupProbe: {exec: {command: [cat, /tmp/up]}}\n"
    )
    pod_yaml = POD.replace("    ports:\n", probes + "    ports:\n", 1)
    rendered = render(full_spec(pod_yaml=pod_yaml), files_root=FILES)
    container = documents(rendered.kube_yaml)[-1]["spec"]["containers"][0]
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)


def test_secret_and_configmap_volumes_become_read_only_files() -> None:
    rendered = render(full_spec(), files_root=FILES)
    pod = documents(rendered.kube_yaml)[1]
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    tls_dir = FILES / "web" / "volumes" / "tls"
    conf_dir = FILES / "web" / "volumes" / "conf"
    assert volumes["tls"] == {
        "name": "tls",
        "hostPath": {"path": str(tls_dir), "type": "Directory"},
    }
    assert volumes["conf"]["hostPath"]["path"] == str(conf_dir)
    files = {f.path: (f.data, f.mode) for f in rendered.files}
    assert files == {
        tls_dir / "certs" / "tls.crt": (b"CERT", 0o400),
        conf_dir / "app.conf": (b"level=debug\n", 0o644),
        conf_dir / "blob": (b"\x00\x01\x02", 0o644),
    }
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["tls"]["readOnly"]
    assert mounts["conf"]["readOnly"]


def test_export_volume_is_mounted_in_every_container() -> None:
    pod_yaml = POD.replace(
        "  containers:\n",
        "  initContainers:\n  - {name: init, image: localhost/flotta/busybox:latest}\n"
        "  containers:\n",
    )
    rendered = render(full_spec(pod_yaml=pod_yaml), files_root=FILES)
    pod = documents(rendered.kube_yaml)[1]
    export = next(v for v in pod["spec"]["volumes"] if v["name"] == "export")
    assert export["hostPath"] == {"path": "/var/lib/flotta/export/web", "type": "DirectoryOrCreate"}
    for group in ("initContainers", "containers"):
        for container in pod["spec"][group]:
            assert {"name": "export", "mountPath": "/export"} in container["volumeMounts"]
            assert {"name": "DEVICE_ID", "value": "dev-1"} in container["env"]
    assert Path("/var/lib/flotta/export/web") in rendered.directories


def test_a_bare_pod_spec_is_accepted() -> None:
    rendered = render(
        WorkloadSpec(name="bare", pod_yaml="containers: [{name: a, image: busybox}]"),
        files_root=FILES,
    )
    pod = documents(rendered.kube_yaml)[0]
    assert pod["kind"] == "Pod"
    assert pod["spec"]["containers"][0]["name"] == "a"
    assert "ports" not in pod["spec"]["containers"][0]


def test_optional_missing_secrets_are_dropped() -> None:
    pod_yaml = """
spec:
  containers:
  - name: a
    image: busybox
    env:
    - name: X
      valueFrom: {secretKeyRef: {name: gone, key: k, optional: true}}
    envFrom:
    - secretRef: {name: gone, optional: true}
  volumes:
  - name: v
    secret: {secretName: gone, optional: true}
"""
    rendered = render(WorkloadSpec(name="opt", pod_yaml=pod_yaml), files_root=FILES)
    container = documents(rendered.kube_yaml)[0]["spec"]["containers"][0]
    assert container["env"] == []
    assert "envFrom" not in container
    assert rendered.secrets == ()
    assert rendered.files == ()
    assert FILES / "opt" / "volumes" / "v" in rendered.directories


@pytest.mark.parametrize(
    ("name", "pod_yaml", "secrets", "message"),
    [
        ("Bad_Name", POD, {}, "DNS label"),
        ("w", "{not: [yaml", {}, "not valid YAML"),
        (
            "w",
            "kind: Deployment\nspec: {containers: [{name: a, image: b}]}",
            {},
            "kind 'Deployment'",
        ),
        ("w", "kind: Pod\nspec: {containers: []}", {}, "at least one container"),
        ("w", "spec: {containers: [{name: a}]}", {}, "image is required"),
        (
            "w",
            "spec: {restartPolicy: Sometimes, containers: [{name: a, image: b}]}",
            {},
            "restartPolicy",
        ),
        ("w", POD, {}, "secret 'creds' is not available"),
        ("w", POD, {"creds": {"password": b"x"}}, "has no key 'cert'"),
        (
            "w",
            "spec:\n  containers: [{name: a, image: b}]\n  volumes:\n"
            "  - {name: v, secret: {secretName: s, items: [{key: k, path: ../../etc/passwd}]}}",
            {"s": {"k": b"x"}},
            "must stay inside the volume",
        ),
    ],
)
def test_invalid_workloads_are_rejected_with_a_reason(
    name: str, pod_yaml: str, secrets: dict[str, dict[str, bytes]], message: str
) -> None:
    spec = WorkloadSpec(name=name, pod_yaml=pod_yaml, secrets=secrets, configmaps=[CONFIGMAP])
    with pytest.raises(InvalidManifestError, match=message) as caught:
        render(spec, files_root=FILES)
    assert caught.value.workload == name
    assert str(caught.value).startswith(f"workload {name!r}: ")


def test_missing_configmap_for_a_volume_is_rejected() -> None:
    with pytest.raises(InvalidManifestError, match="configMap 'app-config' is not available"):
        render(full_spec(configmaps=[]), files_root=FILES)


def test_long_secret_names_are_hashed_within_podman_limits() -> None:
    name = podman_secret_name("w", "s" * 300)
    assert len(name) <= 253
    assert name.startswith(secret_prefix("w"))
    assert name != podman_secret_name("w", "s" * 299)

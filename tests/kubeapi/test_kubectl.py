"""Contract: kubectl (v1.32) against the API: apply, get, describe, patch, delete, get -w."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubeapi.crd import widget, widget_crd

REPO = Path(__file__).resolve().parents[2]


def _apply_crd(kube: Any, tmp_path: Path) -> None:
    path = tmp_path / "crd.yaml"
    path.write_text(yaml.safe_dump(widget_crd()))
    kube.kubectl("apply", "-f", str(path))
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.example.flotta.io", "--timeout=30s"
    )


def _apply(kube: Any, obj: dict[str, Any], namespace: str) -> str:
    return kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(obj)).stdout


def test_apply_get_describe_patch_delete(kube: Any, kube_namespace: str, tmp_path: Path) -> None:
    _apply_crd(kube, tmp_path)
    body = widget("blue-one", color="blue", size=4)
    body["metadata"]["labels"] = {"team": "edge"}
    assert "widget.example.flotta.io/blue-one created" in _apply(kube, body, kube_namespace)
    assert "unchanged" in _apply(kube, body, kube_namespace)
    body["spec"]["size"] = 5
    assert "configured" in _apply(kube, body, kube_namespace)

    table = kube.kubectl("get", "widgets", "-n", kube_namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "COLOR", "SIZE", "PHASE", "READY", "AGE"]
    assert table[1].split()[:3] == ["blue-one", "blue", "5"]
    short = kube.kubectl("get", "wix", "-n", kube_namespace, "-l", "team=edge", "-o", "name").stdout
    assert short.strip() == "widget.example.flotta.io/blue-one"

    as_yaml = yaml.safe_load(
        kube.kubectl("get", "widget", "blue-one", "-n", kube_namespace, "-o", "yaml").stdout
    )
    assert as_yaml["spec"] == {"color": "blue", "size": 5}
    assert as_yaml["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in as_yaml["metadata"]["annotations"]

    kube.kubectl(
        "patch",
        "widget",
        "blue-one",
        "-n",
        kube_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}',
    )
    row = kube.kubectl(
        "get", "widget", "blue-one", "-n", kube_namespace, "--no-headers"
    ).stdout.split()
    assert row[:5] == ["blue-one", "blue", "5", "Running", "True"]

    described = kube.kubectl("describe", "widget", "blue-one", "-n", kube_namespace).stdout
    assert "Name:         blue-one" in described
    assert "Phase:" in described
    assert "Running" in described
    assert "Labels:       team=edge" in described

    invalid = kube.kubectl(
        "apply",
        "-n",
        kube_namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(widget("bad", color="pink")),
        check=False,
    )
    assert invalid.returncode != 0
    assert 'Unsupported value: "pink"' in invalid.stderr
    assert "spec.color" in invalid.stderr

    assert (
        'widget.example.flotta.io "blue-one" deleted'
        in kube.kubectl("delete", "widget", "blue-one", "-n", kube_namespace).stdout
    )
    missing = kube.kubectl("get", "widget", "blue-one", "-n", kube_namespace, check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr


def test_get_watch_prints_changes(kube: Any, kube_namespace: str, tmp_path: Path) -> None:
    _apply_crd(kube, tmp_path)
    _apply(kube, widget("watched", color="green"), kube_namespace)
    process = subprocess.Popen(
        kube.kubectl_command("get", "widgets", "-n", kube_namespace, "-w"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        header = lines.get(timeout=15)
        assert header.split()[:3] == ["NAME", "COLOR", "SIZE"]
        assert lines.get(timeout=15).split()[:2] == ["watched", "green"]
        time.sleep(0.5)
        kube.kubectl(
            "patch",
            "widget",
            "watched",
            "-n",
            kube_namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Moving"}}',
        )
        deadline = time.monotonic() + 15
        seen = ""
        while "Moving" not in seen and time.monotonic() < deadline:
            seen = lines.get(timeout=15)
        assert "Moving" in seen
        assert seen.split()[0] == "watched"
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=5)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def test_core_kinds_through_kubectl(kube: Any, kube_namespace: str) -> None:
    manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {kube_namespace}}}
data: {{mode: fast}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {kube_namespace}}}
stringData: {{password: hunter2}}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {{name: leader, namespace: {kube_namespace}}}
spec: {{holderIdentity: op-1, leaseDurationSeconds: 15}}
"""
    kube.kubectl("apply", "-f", "-", stdin=manifest)
    kube.kubectl("apply", "-f", "-", stdin=manifest.replace("fast", "slow"))
    assert (
        kube.kubectl(
            "get", "cm", "settings", "-n", kube_namespace, "-o", "jsonpath={.data.mode}"
        ).stdout
        == "slow"
    )
    assert (
        kube.kubectl(
            "get", "secret", "creds", "-n", kube_namespace, "-o", "jsonpath={.data.password}"
        ).stdout
        == "aHVudGVyMg=="
    )
    leases = kube.kubectl("get", "leases", "-n", kube_namespace).stdout.splitlines()
    assert leases[0].split()[:2] == ["NAME", "HOLDER"]
    assert leases[1].split()[:2] == [
        "leader",
        "op-1",
    ]
    namespaces = kube.kubectl("get", "namespaces", kube_namespace, "--no-headers").stdout.split()
    assert namespaces[:2] == [kube_namespace, "Active"]


def test_imperative_create_sends_protobuf(kube: Any, kube_namespace: str) -> None:
    kube.kubectl("create", "configmap", "imperative", "-n", kube_namespace, "--from-literal=a=b")
    kube.kubectl("create", "secret", "generic", "pw", "-n", kube_namespace, "--from-literal=pw=x")
    kube.kubectl("create", "namespace", f"{kube_namespace}-imp")
    try:
        config_map = yaml.safe_load(
            kube.kubectl("get", "cm", "imperative", "-n", kube_namespace, "-o", "yaml").stdout
        )
        assert config_map["data"] == {"a": "b"}
        assert "generateName" not in config_map["metadata"]
        secret = kube.kubectl(
            "get", "secret", "pw", "-n", kube_namespace, "-o", "jsonpath={.data.pw}"
        )
        assert secret.stdout == "eA=="
        phase = kube.kubectl("get", "ns", f"{kube_namespace}-imp", "-o", "jsonpath={.status.phase}")
        assert phase.stdout == "Active"
    finally:
        kube.kubectl("delete", "namespace", f"{kube_namespace}-imp", "--wait=false")


@pytest.mark.skipif(not (REPO / "deploy" / "crds").is_dir(), reason="deploy/crds not generated")
def test_project_crds_and_samples(kube: Any, kube_namespace: str) -> None:
    kube.kubectl("apply", "-f", str(REPO / "deploy" / "crds"))
    for crd in ("edgedevices", "edgeworkloads", "edgedevicesets", "edgedevicesignedrequests"):
        kube.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{crd}.management.project-flotta.io",
            "--timeout=30s",
        )
    for sample in sorted((REPO / "deploy" / "samples").glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(sample.read_text()) if d]
        for document in documents:
            document["metadata"]["namespace"] = kube_namespace
        kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    devices = kube.kubectl("get", "ed", "-n", kube_namespace).stdout.splitlines()
    assert devices[0].split() == ["NAME", "PHASE", "READY", "APPLIED", "LAST", "SEEN", "AGE"]
    assert devices[1].split()[0] == "camera-0001"
    workloads = kube.kubectl("get", "edgeworkloads", "-n", kube_namespace, "-o", "yaml").stdout
    assert "localhost/flotta/busybox:latest" in workloads
    kube.kubectl(
        "patch",
        "ed",
        "camera-0001",
        "-n",
        kube_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Online","appliedVersion":"v1"}}',
    )
    row = kube.kubectl(
        "get", "ed", "camera-0001", "-n", kube_namespace, "--no-headers"
    ).stdout.split()
    assert row[:2] == ["camera-0001", "Online"]
    assert "v1" in row
    assert (
        "camera-0001" in kube.kubectl("describe", "ed", "camera-0001", "-n", kube_namespace).stdout
    )


def test_diff_uses_server_dry_run(kube: Any, kube_namespace: str, tmp_path: Path) -> None:
    _apply_crd(kube, tmp_path)
    body = widget("diffed", color="blue", size=4)
    path = tmp_path / "widget.yaml"
    path.write_text(yaml.safe_dump(body))
    absent = kube.kubectl("diff", "-n", kube_namespace, "-f", str(path), check=False)
    assert absent.returncode == 1, absent.stderr  # 1: differences found (creation)
    assert "+  name: diffed" in absent.stdout
    missing = kube.kubectl("get", "widget", "diffed", "-n", kube_namespace, check=False)
    assert missing.returncode != 0  # the dry-run creation stored nothing
    _apply(kube, body, kube_namespace)
    same = kube.kubectl("diff", "-n", kube_namespace, "-f", str(path), check=False)
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    path.write_text(yaml.safe_dump(widget("diffed", color="blue", size=5)))
    changed = kube.kubectl("diff", "-n", kube_namespace, "-f", str(path), check=False)
    assert changed.returncode == 1, changed.stderr
    assert "-  size: 4" in changed.stdout
    assert "+  size: 5" in changed.stdout
    stored = kube.kubectl(
        "get", "widget", "diffed", "-n", kube_namespace, "-o", "jsonpath={.spec.size}"
    )
    assert stored.stdout == "4"


def test_diff_of_a_config_map(kube: Any, kube_namespace: str) -> None:
    manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {kube_namespace}, labels: {{a: b}}}}
data: {{mode: fast}}
"""
    kube.kubectl("apply", "-f", "-", stdin=manifest)
    same = kube.kubectl("diff", "-f", "-", stdin=manifest, check=False)
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    changed = kube.kubectl("diff", "-f", "-", stdin=manifest.replace("fast", "slow"), check=False)
    assert changed.returncode == 1, changed.stderr
    assert "-  mode: fast" in changed.stdout
    assert "+  mode: slow" in changed.stdout


def _explain(kube: Any, *args: str) -> str:
    return " ".join(kube.kubectl("explain", *args).stdout.split())  # whitespace-insensitive


def test_explain_custom_kinds(kube: Any, tmp_path: Path) -> None:
    _apply_crd(kube, tmp_path)
    spec = _explain(kube, "widget.spec")
    assert "GROUP: example.flotta.io KIND: Widget VERSION: v1" in spec
    assert "FIELD: spec <Object> DESCRIPTION: What the widget should be." in spec
    assert "color <string> -required- enum: red, green, blue The colour it is painted." in spec
    assert "tags <[]string>" in spec
    assert "size <integer>" in spec
    color = _explain(kube, "widgets.spec.color")
    assert "FIELD: color <string> ENUM: red green blue DESCRIPTION: The colour it is painted." in (
        color
    )
    metadata = _explain(kube, "wix.metadata")
    assert "FIELD: metadata <ObjectMeta>" in metadata
    assert "ownerReferences <[]OwnerReference>" in metadata
    owners = _explain(kube, "widget.metadata.ownerReferences.uid")
    assert "FIELD: uid <string>" in owners
    missing = kube.kubectl("explain", "widget.spec.nope", check=False)
    assert missing.returncode != 0
    assert 'field "nope" does not exist' in missing.stderr


@pytest.mark.skipif(not (REPO / "deploy" / "crds").is_dir(), reason="deploy/crds not generated")
def test_explain_project_kinds(kube: Any) -> None:
    kube.kubectl("apply", "-f", str(REPO / "deploy" / "crds"))
    kube.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/edgedevices.management.project-flotta.io",
        "crd/edgeworkloads.management.project-flotta.io",
        "crd/edgedevicesets.management.project-flotta.io",
        "crd/edgedevicesignedrequests.management.project-flotta.io",
        "--timeout=30s",
    )
    device = _explain(kube, "edgedevice.spec")
    assert "GROUP: management.project-flotta.io KIND: EdgeDevice VERSION: v1alpha1" in device
    assert "FIELD: spec <Object>" in device
    assert "heartbeat <Object>" in device
    selector = _explain(kube, "edgeworkload.spec.deviceSelector")
    assert "an empty selector selects every device of the namespace" in selector
    assert "matchLabels <map[string]string>" in selector
    whole = _explain(kube, "ed")
    assert "An enrolled device: its configuration (spec) and what it reports (status)." in whole
    assert "metadata <ObjectMeta>" in whole
    # Every field carries its description from the models' docstrings (see test_crds).
    assert "<no description>" not in device
    assert "heartbeat <Object> How often the device reports" in device
    assert "osInformation <Object> Which rpm-ostree commit the device runs" in device
    assert "storage <Object> Upstream's data-sync storage. Accepted for compatibility" in device
    period = _explain(kube, "edgedevice.spec.heartbeat.periodSeconds")
    assert "FIELD: periodSeconds <integer>" in period
    assert "DESCRIPTION: Seconds between the device's heartbeats (default 60)." in period
    status = _explain(kube, "edgedevice.status")
    assert "<no description>" not in status
    assert "desiredVersion <string> The version (a content hash) of the desired state" in status
    workload = _explain(kube, "edgeworkload.spec")
    assert "<no description>" not in workload
    assert "logCollection <string> The name of a log destination" in workload
    ports = _explain(kube, "edgeworkload.spec.pod.spec.containers.ports.hostPort")
    assert "The device's port to publish it on" in ports
    counts = _explain(kube, "ew.status")
    assert "runningDevices <integer> How many of them report the workload Running." in counts
    enrolment = _explain(kube, "edgedevicesignedrequest.spec")
    assert "approved <boolean> Set to true to approve the enrolment" in enrolment
    members = _explain(kube, "edgedeviceset.status.members")
    assert "flotta/member-of: <set>" in members


def _server_side(kube: Any, obj: dict[str, Any], namespace: str, *flags: str) -> Any:
    return kube.kubectl(
        "apply",
        "--server-side",
        *flags,
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(obj),
        check=False,
    )


def _managers(kube: Any, namespace: str, name: str) -> dict[str, str]:
    obj = yaml.safe_load(
        kube.kubectl(
            "get", "widget", name, "-n", namespace, "-o", "yaml", "--show-managed-fields"
        ).stdout
    )
    return {e["manager"]: e["operation"] for e in obj["metadata"].get("managedFields", [])}


def test_server_side_apply(kube: Any, kube_namespace: str, tmp_path: Path) -> None:
    _apply_crd(kube, tmp_path)
    body = widget("ssa", color="blue", size=4, tags=["a"])
    body["metadata"]["labels"] = {"team": "edge"}
    created = _server_side(kube, body, kube_namespace)
    assert created.returncode == 0, created.stderr
    assert "widget.example.flotta.io/ssa serverside-applied" in created.stdout
    assert _managers(kube, kube_namespace, "ssa") == {"kubectl": "Apply"}

    body["spec"]["size"] = 5
    del body["spec"]["tags"]
    updated = _server_side(kube, body, kube_namespace)
    assert updated.returncode == 0, updated.stderr
    stored = yaml.safe_load(
        kube.kubectl("get", "widget", "ssa", "-n", kube_namespace, "-o", "yaml").stdout
    )
    assert stored["spec"] == {"color": "blue", "size": 5}  # tags dropped from the file: gone
    assert stored["metadata"]["labels"] == {"team": "edge"}

    kube.kubectl(
        "patch",
        "widget",
        "ssa",
        "-n",
        kube_namespace,
        "--type=merge",
        "-p",
        '{"spec":{"color":"green"}}',
    )
    assert _managers(kube, kube_namespace, "ssa") == {"kubectl": "Apply", "kubectl-patch": "Update"}
    conflict = _server_side(kube, body, kube_namespace)
    assert conflict.returncode != 0
    assert "Apply failed with 1 conflict" in conflict.stderr
    assert 'conflict with "kubectl-patch"' in conflict.stderr
    assert ".spec.color" in conflict.stderr
    forced = _server_side(kube, body, kube_namespace, "--force-conflicts")
    assert forced.returncode == 0, forced.stderr
    color = kube.kubectl(
        "get", "widget", "ssa", "-n", kube_namespace, "-o", "jsonpath={.spec.color}"
    ).stdout
    assert color == "blue"

    same = kube.kubectl(
        "diff",
        "--server-side",
        "-n",
        kube_namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(body),
        check=False,
    )
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    body["spec"]["size"] = 6
    changed = kube.kubectl(
        "diff",
        "--server-side",
        "-n",
        kube_namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(body),
        check=False,
    )
    assert changed.returncode == 1, changed.stderr
    assert "+  size: 6" in changed.stdout


def test_server_side_apply_of_a_config_map(kube: Any, kube_namespace: str) -> None:
    manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: applied, namespace: {kube_namespace}}}
data: {{a: "1", b: "2"}}
"""
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=manifest.replace(', b: "2"', ""))
    data = kube.kubectl(
        "get", "cm", "applied", "-n", kube_namespace, "-o", "jsonpath={.data}"
    ).stdout
    assert data == '{"a":"1"}'

"""Desired workloads -> runtime specifications (secrets opened with the device key), and the
workload part of the heartbeat. Pure."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from flotta.agent.endpoints import pod_address
from flotta.agent.reporting import workload_reports
from flotta.agent.runtime import WorkloadState, spec_hash
from flotta.agent.specs import convert, export_dir
from flotta.pki.keys import generate_key
from flotta.pki.sealing import seal
from flotta.schemas.wire import DesiredState, DesiredWorkload, SealedSecret
from flotta.schemas.wire.desired import ConfigMapData

DEVICE = "edge-1"


def workload(name: str, **extra: object) -> DesiredWorkload:
    return DesiredWorkload(
        name=name,
        namespace="default",
        labels={"app": name},
        pod_spec={"containers": [{"name": "app", "image": "localhost/x:1"}]},
        **extra,  # type: ignore[arg-type]
    )


def test_workload_gets_device_env_export_dir_configmaps_and_opened_secrets(
    tmp_path: Path,
) -> None:
    key = generate_key()
    secret_data = {"password": base64.b64encode(b"s3cret").decode()}
    sealed = seal(key.public_key(), json.dumps(secret_data).encode(), device_id=DEVICE)
    auth = seal(key.public_key(), b'{"auths": {}}', device_id=DEVICE)
    state = DesiredState(
        device_id=DEVICE,
        namespace="default",
        workloads=[
            workload(
                "web",
                secrets=["db"],
                image_registry_auth=auth,
                configmaps=[ConfigMapData(name="settings", data={"mode": "edge"})],
            )
        ],
        secrets=[SealedSecret(name="db", data=sealed)],
    )
    converted = convert(state, key=lambda: key, state_dir=tmp_path)
    assert converted.failures == {}
    spec = converted.specs["web"]
    assert spec.env == {"DEVICE_ID": DEVICE}
    assert spec.export_dir == export_dir(tmp_path, "web") == tmp_path / "workloads/web/export"
    assert spec.secrets == {"db": {"password": b"s3cret"}}
    assert spec.registry_auth == '{"auths": {}}'
    assert spec.labels == {"app": "web"}
    pod = yaml.safe_load(spec.pod_yaml)
    assert pod["kind"] == "Pod"
    assert pod["spec"]["containers"][0]["image"] == "localhost/x:1"
    assert yaml.safe_load(spec.configmaps[0])["data"] == {"mode": "edge"}
    # The same desired workload always gives the same specification hash.
    again = convert(state, key=lambda: key, state_dir=tmp_path).specs["web"]
    assert spec_hash(again) == spec_hash(spec)


def test_unopenable_secrets_fail_only_their_workload(tmp_path: Path) -> None:
    key = generate_key()
    other = generate_key()
    sealed_for_other = seal(other.public_key(), b"{}", device_id=DEVICE)
    state = DesiredState(
        device_id=DEVICE,
        namespace="default",
        workloads=[
            workload("a", secrets=["missing"]),
            workload("b", secrets=["foreign"]),
            workload("c"),
        ],
        secrets=[SealedSecret(name="foreign", data=sealed_for_other)],
    )
    converted = convert(state, key=lambda: key, state_dir=tmp_path)
    assert set(converted.specs) == {"c"}
    assert "not in the desired state" in converted.failures["a"]
    assert "cannot be opened" in converted.failures["b"]
    no_key = convert(state, key=lambda: None, state_dir=tmp_path)
    assert "no device key" in no_key.failures["b"]


def test_workload_reports() -> None:
    state = DesiredState(
        device_id=DEVICE,
        namespace="default",
        workloads=[workload("run"), workload("new"), workload("bad")],
    )
    states = {
        "run": WorkloadState("run", "Running"),
        "gone": WorkloadState("gone", "Running"),
    }
    reports = {r.name: (r.phase, r.message) for r in workload_reports(state, states, {"bad": "x"})}
    assert reports == {
        "run": ("Running", ""),
        "new": ("Deploying", ""),
        "bad": ("Failed", "x"),
        "gone": ("Removing", ""),
    }
    assert workload_reports(None, {}, {}) == []


def test_pod_address_from_an_inspection() -> None:
    inspect = {
        "NetworkSettings": {"Networks": {"podman-default-kube-network": {"IPAddress": "10.89.0.5"}}}
    }
    assert pod_address(inspect) == "10.89.0.5"
    assert (
        pod_address({"NetworkSettings": {"IPAddress": "10.88.0.2", "Networks": {}}}) == "10.88.0.2"
    )
    assert pod_address({"NetworkSettings": {"Networks": {"x": None}}}) == ""
    assert pod_address([]) == ""

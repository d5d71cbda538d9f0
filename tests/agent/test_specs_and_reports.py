"""Desired workloads -> runtime specifications (secrets opened with the device key in a child
process), and the workload part of the heartbeat."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from flotta.agent.endpoints import pod_address
from flotta.agent.reporting import workload_reports
from flotta.agent.runtime import WorkloadState, spec_hash
from flotta.agent.specs import convert, export_dir
from flotta.agent.unsealing import OpenedItems, open_in_child, sealed_items
from flotta.pki.keys import PublicKey, generate_key, private_key_to_pem
from flotta.pki.sealing import seal as seal_reference
from flotta.schemas.codec import encode
from flotta.schemas.wire import DesiredState, DesiredWorkload, SealedData, SealedSecret
from flotta.schemas.wire.desired import ConfigMapData

DEVICE = "edge-1"


def seal(public_key: PublicKey, data: bytes, *, device_id: str) -> SealedData:
    """Sealed as the operator seals."""
    return seal_reference(public_key, data, device_id=device_id)  # type: ignore[arg-type]


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
    opened = open_with(key, state, tmp_path)
    converted = convert(state, opener=opened, state_dir=tmp_path)
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
    again = convert(state, opener=opened, state_dir=tmp_path).specs["web"]
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
    converted = convert(state, opener=open_with(key, state, tmp_path), state_dir=tmp_path)
    assert set(converted.specs) == {"c"}
    assert "not in the desired state" in converted.failures["a"]
    assert "cannot be opened" in converted.failures["b"]
    without_key = asyncio.run(open_in_child(tmp_path / "absent.key", DEVICE, sealed_items(state)))
    no_key = convert(state, opener=without_key, state_dir=tmp_path)
    assert "no device key" in no_key.failures["b"]


def test_the_daemon_process_loads_neither_cryptography_nor_pydantic_to_unseal(
    tmp_path: Path,
) -> None:
    key = generate_key()
    state = DesiredState(
        device_id=DEVICE,
        namespace="default",
        workloads=[workload("web", secrets=["db"])],
        secrets=[SealedSecret(name="db", data=seal(key.public_key(), b"{}", device_id=DEVICE))],
    )
    (tmp_path / "device.key").write_bytes(private_key_to_pem(key))
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from flotta.agent.unsealing import open_in_child, sealed_items\n"
        "from flotta.schemas.codec import decode\n"
        "from flotta.schemas.wire import DesiredState\n"
        "state = decode(DesiredState, sys.stdin.buffer.read())\n"
        "opened = asyncio.run(open_in_child(Path(sys.argv[1]), state.device_id, "
        "sealed_items(state)))\n"
        "assert opened(state.secrets[0].data) == b'{}'\n"
        "print(any(m.startswith(('cryptography', 'pydantic')) for m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "device.key")],
        input=encode(state),
        capture_output=True,
        env=env,
        check=True,
    )
    assert result.stdout.strip() == b"False"


def open_with(key: Any, state: DesiredState, tmp_path: Path) -> OpenedItems:
    path = tmp_path / "device.key"
    path.write_bytes(private_key_to_pem(key))
    return asyncio.run(open_in_child(path, DEVICE, sealed_items(state)))


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


def test_the_daemon_loads_neither_cryptography_nor_pydantic() -> None:
    """Keys stay in child processes (and enrolment in its own): the daemon's memory goal
    (about 34 MiB) has no room for cryptography (8 MiB) or pydantic (12 MiB)."""
    script = (
        "import sys\n"
        "import flotta.agent.cli, flotta.agent.daemon, flotta.agent.enrolment\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'pydantic'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env=env, check=True
    )
    assert result.stdout.strip() == b"[]"

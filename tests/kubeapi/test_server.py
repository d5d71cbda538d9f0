"""The local server itself: persistence, the CLI, TLS and token, errors in Status shape."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.fixtures.kubetypes import obj
from tests.fixtures.sources import source_path
from tests.kubeapi.crd import GROUP, PLURAL, VERSION, install_widget_crd, widget


def test_state_survives_restart(kube_api_factory: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = kube_api_factory(state_dir=state)
    api_client = first.api_client()
    install_widget_crd(api_client)
    created = obj(
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, widget("kept")
        )
    )
    client.CoreV1Api(api_client).create_namespaced_secret(
        "default",
        client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"a": "b"}),
    )
    kube_api_factory.stop(first)

    second = kube_api_factory(state_dir=state)
    assert second.token == first.token
    custom = client.CustomObjectsApi(second.api_client())
    kept = obj(custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "kept"))
    assert kept["metadata"]["uid"] == created["metadata"]["uid"]
    assert kept["spec"] == created["spec"]
    assert client.CoreV1Api(second.api_client()).read_namespaced_secret("s", "default").data == {
        "a": "Yg=="
    }
    later = obj(
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("later"))
    )
    assert int(later["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert (state / "state.db").is_file()


def _tls_context(ca_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))


def _get(url: str, ca_path: Path, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url)  # noqa: S310
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        context = _tls_context(ca_path)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        error.close()
        return error.code, body


def test_token_and_tls_are_required(kube_api: Any) -> None:
    status, body = _get(f"{kube_api.url}/api/v1/namespaces", kube_api.ca_path, None)
    assert status == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert _get(f"{kube_api.url}/api/v1/namespaces", kube_api.ca_path, "wrong")[0] == 401
    status, listed = _get(f"{kube_api.url}/api/v1/namespaces", kube_api.ca_path, kube_api.token)
    assert status == 200
    assert "default" in [n["metadata"]["name"] for n in listed["items"]]
    assert kube_api.url.startswith("https://127.0.0.1:")
    config = yaml.safe_load(kube_api.kubeconfig.read_text())
    assert config["users"][0]["user"]["token"] == kube_api.token
    assert config["clusters"][0]["cluster"]["server"] == kube_api.url
    assert oct(kube_api.kubeconfig.stat().st_mode & 0o777) == "0o600"


def test_discovery_and_unknown_paths(kube_api: Any) -> None:
    status, groups = _get(f"{kube_api.url}/apis", kube_api.ca_path, kube_api.token)
    assert status == 200
    assert groups["kind"] == "APIGroupList"
    assert "coordination.k8s.io" in [g["name"] for g in groups["groups"]]
    status, resources = _get(f"{kube_api.url}/api/v1", kube_api.ca_path, kube_api.token)
    names = {r["name"] for r in resources["resources"]}
    assert {"namespaces", "namespaces/status", "secrets", "configmaps", "events"} <= names
    status, missing = _get(
        f"{kube_api.url}/apis/nope.example/v1/things", kube_api.ca_path, kube_api.token
    )
    assert status == 404
    assert missing["kind"] == "Status"
    assert missing["reason"] == "NotFound"
    assert _get(f"{kube_api.url}/version", kube_api.ca_path, None)[1]["major"] == "1"


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "cli-state"
    environment = dict(os.environ, PYTHONPATH=source_path())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flotta.cli",
            "dev",
            "kube-api",
            "--state-dir",
            str(state),
            "--port",
            "0",
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (state / "kubeconfig").exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no kubeconfig within 30 s"
            time.sleep(0.1)
        result = subprocess.run(
            [
                "/usr/bin/kubectl",
                f"--kubeconfig={state / 'kubeconfig'}",
                "get",
                "namespaces",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "namespace/default" in result.stdout.split()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "stopping" in stderr


def _send(
    kube_api: Any, method: str, path: str, body: str, content_type: str
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310
        f"{kube_api.url}{path}", data=body.encode(), method=method
    )
    request.add_header("Authorization", f"Bearer {kube_api.token}")
    request.add_header("Content-Type", content_type)
    context = _tls_context(kube_api.ca_path)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = json.loads(error.read())
        error.close()
        return error.code, payload


SECRETS = "/api/v1/namespaces/default/secrets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "code"),
    [
        ("POST", SECRETS, "[1, 2]", "application/json", 400),
        ("POST", SECRETS, "not json", "application/json", 400),
        ("POST", SECRETS, '{"metadata": "x"}', "application/json", 400),
        ("POST", SECRETS, '{"metadata": {"name": "s"}, "data": "x"}', "application/json", 422),
        (
            "POST",
            SECRETS,
            '{"metadata": {"name": "s"}, "stringData": [1]}',
            "application/json",
            422,
        ),
        (
            "POST",
            SECRETS,
            '{"metadata": {"name": "s"}, "data": {"a": "!!"}}',
            "application/json",
            422,
        ),
        (
            "POST",
            CONFIGMAPS,
            '{"metadata": {"name": "c", "labels": {"a": 1}}}',
            "application/json",
            422,
        ),
        (
            "POST",
            CONFIGMAPS,
            '{"metadata": {"name": "c"}, "data": {"a": 1}}',
            "application/json",
            422,
        ),
        ("POST", CONFIGMAPS, '{"metadata": {"name": "Bad_Name"}}', "application/json", 422),
        ("POST", CONFIGMAPS, "k8s\x00garbage", "application/vnd.kubernetes.protobuf", 415),
        ("PATCH", f"{CONFIGMAPS}/absent", "{}", "application/merge-patch+json", 404),
        ("PATCH", f"{CONFIGMAPS}/absent", "{}", "text/plain", 415),
        (
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            '{"metadata": {"name": "x"}, "spec": "x"}',
            "application/json",
            422,
        ),
    ],
)
def test_bad_requests_answer_status_not_500(
    kube_api: Any, method: str, path: str, body: str, content_type: str, code: int
) -> None:
    status, payload = _send(kube_api, method, path, body, content_type)
    assert status == code
    assert payload["kind"] == "Status"
    assert payload["code"] == code
    assert payload["status"] == "Failure"

"""The isolated Podman harness itself: config, image, service, kube play with infra."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flotta.dev.podman import KUBE_NETWORK, api_call, build_busybox_image, podman
from tests.fixtures.podman import PodmanTestEnv
from tests.fixtures.sources import source_path

pytestmark = pytest.mark.podman


def test_config_keeps_the_instance_apart_from_the_system(podman_env: PodmanTestEnv) -> None:
    info = json.loads(podman(podman_env.environment, "info", "--format", "json"))
    state_dir = str(podman_env.environment.state_dir)
    assert info["host"]["ociRuntime"]["name"] == "runc"
    assert info["store"]["graphRoot"].startswith(state_dir)
    assert info["store"]["runRoot"].startswith(state_dir)
    (network,) = json.loads(podman(podman_env.environment, "network", "inspect", KUBE_NETWORK))
    assert network["dns_enabled"] is False


def test_busybox_image_build_is_idempotent(podman_env: PodmanTestEnv) -> None:
    assert build_busybox_image(podman_env.environment) is False
    out = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network=none",
            podman_env.image,
            "sh",
            "-c",
            "echo hello; ulimit -n",
        ],
        env=podman_env.environment.process_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out == ["hello", "4096"]


def test_service_answers_on_its_socket(podman_env: PodmanTestEnv) -> None:
    status, body = api_call(podman_env.socket_path, "GET", "/version")
    assert status == 200
    assert json.loads(body)["Version"].startswith("4.")


def test_service_runs_in_its_own_network_namespace(podman_env: PodmanTestEnv) -> None:
    own = subprocess.run(
        ["readlink", "/proc/self/ns/net"], capture_output=True, text=True, check=True
    ).stdout
    theirs = subprocess.run(
        podman_env.netns_argv(["readlink", "/proc/self/ns/net"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert own != theirs


def test_kube_play_runs_a_pod_with_a_locally_built_infra_container(
    podman_env: PodmanTestEnv, tmp_path: Path
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: harness-check}\nspec:\n"
        "  restartPolicy: Never\n  containers:\n"
        f"  - {{name: c, image: {podman_env.image}, command: [sh, -c, 'exit 0']}}\n"
    )
    environment = podman_env.environment
    # In the service's network namespace, where the pod network lives.
    run = functools.partial(
        subprocess.run,
        env=environment.process_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    run(podman_env.netns_argv(["podman", "kube", "play", str(manifest)]))
    try:
        inspect = json.loads(run(["podman", "pod", "inspect", "harness-check"]).stdout)
        infra_id = inspect["InfraContainerID"]
        assert infra_id
        image = run(["podman", "inspect", "--format", "{{.ImageName}}", infra_id]).stdout
        assert image.startswith("localhost/podman-pause:")
    finally:
        run(podman_env.netns_argv(["podman", "pod", "rm", "-f", "harness-check"]))


def test_dev_cli_prepares_an_instance(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": source_path()}
    state = tmp_path / "device-1"
    command = [sys.executable, "-m", "flotta.cli", "dev", "podman", "--prepare-only"]
    output = subprocess.run(
        [*command, "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert f"export CONTAINERS_CONF={state / 'containers.conf'}" in output
    assert "localhost/flotta/busybox:latest: built" in output
    assert 'runtime = "runc"' in (state / "containers.conf").read_text()

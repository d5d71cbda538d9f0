"""The isolated Podman harness itself: config, image, service, kube play with infra."""

from __future__ import annotations

import json
import subprocess

import pytest

from flotta.dev.podman import api_call, build_busybox_image, podman
from tests.fixtures.podman import PodmanTestEnv

pytestmark = pytest.mark.podman


def test_config_keeps_the_instance_apart_from_the_system(podman_env: PodmanTestEnv) -> None:
    info = json.loads(podman(podman_env.environment, "info", "--format", "json"))
    state_dir = str(podman_env.environment.state_dir)
    assert info["host"]["ociRuntime"]["name"] == "runc"
    assert info["store"]["graphRoot"].startswith(state_dir)
    assert info["store"]["runRoot"].startswith(state_dir)


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

"""The built images (``make images``; built on first use into the tests' store, see
tests/fixtures/images.py): what they contain, who they run as, what their labels say."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from flotta.dev.images import PodmanStore, Provenance
from flotta.dev.nats_server import free_port

MB = 1_000_000  # as `podman images` counts
# docs/images.md: the goal for the control plane is under 150 MB.
CONTROL_PLANE_LIMIT = 150 * MB


def run(store: PodmanStore, image: str, *command: str, entrypoint: str | None = None) -> str:
    args = ["run", "--rm", "--network=none"]
    if entrypoint is not None:
        args.append(f"--entrypoint={entrypoint}")
    return store.podman(*args, image, *command, timeout=120)


def test_debian_base_has_python_and_dpkg_but_no_apt(
    images_store: PodmanStore, base_image: str
) -> None:
    out = run(
        images_store,
        base_image,
        "sh",
        "-c",
        "python3 -c 'import ssl, sqlite3, venv; print(ssl.OPENSSL_VERSION)';"
        " dpkg-query -W -f='${Package}\\n' python3.11 ca-certificates dpkg;"
        " command -v apt-get || echo no-apt;"
        " [ -d /usr/share/perl ] || echo no-perl-modules;"
        " . /etc/os-release; echo $VERSION_CODENAME",
    )
    lines = out.split()
    assert "OpenSSL" in lines
    assert {"python3.11", "ca-certificates", "dpkg", "no-apt", "bookworm"} <= set(lines)
    assert "no-perl-modules" in lines  # usr-is-merged: usrmerge would bring all of Perl
    assert images_store.size(base_image) < 100 * MB


def test_control_plane_image_runs_every_component_as_10001_with_its_labels(
    images_store: PodmanStore, control_plane_image: str
) -> None:
    out = run(
        images_store,
        control_plane_image,
        "-c",
        "id -u; id -g; flotta --help; python -m flotta.mosquitto.reloader --help >/dev/null"
        " && echo reloader-ok; python -c 'import pip' 2>/dev/null || echo no-pip;"
        " python -c 'import kubernetes.aio' 2>/dev/null || echo no-kubernetes-aio",
        entrypoint="/bin/sh",
    )
    lines = out.splitlines()
    assert lines[:2] == ["10001", "10001"]
    for component in ("operator", "bridge", "exporter", "pki", "broker"):
        assert f"    {component}" in out, component
    assert "unavailable" not in out.split("dev ", 1)[0]  # every component's extra is there
    assert {"reloader-ok", "no-pip", "no-kubernetes-aio"} <= set(lines)
    labels = images_store.labels(control_plane_image)
    provenance = Provenance.of()
    assert labels["org.opencontainers.image.version"] == provenance.version
    assert labels["org.opencontainers.image.revision"] == provenance.revision
    assert labels["org.opencontainers.image.source"] == provenance.source
    assert images_store.inspect(control_plane_image)["User"] == "10001:10001"
    assert images_store.size(control_plane_image) < CONTROL_PLANE_LIMIT


def test_broker_image_runs_debians_mosquitto_as_1883(
    images_store: PodmanStore, broker_image: str, tmp_path: Path
) -> None:
    """Mosquitto from the image on a loopback port, with a configuration mounted as the
    manifests mount it; a message goes through it (the TLS set-up is the stack's, tested
    with the host's Mosquitto of the same Debian package)."""
    port = free_port()
    config = tmp_path / "config"
    config.mkdir()
    (config / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        "persistence_location /mosquitto/data/\nlog_dest stderr\n"
    )
    name = f"flotta-broker-{port}"
    images_store.podman(
        "run",
        "--detach",
        f"--name={name}",
        "--network=host",
        "--read-only",
        "--cap-drop=ALL",
        f"--volume={config}:/etc/mosquitto/flotta:ro",
        broker_image,
    )
    try:
        deadline = time.monotonic() + 30
        while not _publish(port):  # retained: the subscriber below gets it
            assert time.monotonic() < deadline, images_store.podman("logs", name)
            time.sleep(0.2)
        done = subprocess.run(
            ["mosquitto_sub", "-p", str(port), "-t", "t", "-C", "1", "-W", "10"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        received = done.stdout.strip()
        assert received == "hello", images_store.podman("logs", name)
        user = images_store.podman("top", name, "huser").split()[1:]
        assert user == ["1883"]
        version = run(
            images_store, broker_image, "-W", "-f=${Version}", "mosquitto", entrypoint="dpkg-query"
        )
        assert version.startswith("2.0."), version  # Debian's package
    finally:
        images_store.podman("rm", "--force", "--time=5", name)


def _publish(port: int) -> bool:
    done = subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-t", "t", "-m", "hello", "-r", "-q", "1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0

"""The .rpm, read with ``rpm -qp`` (it cannot be installed on this Debian machine): its
files with owners and modes, its configuration file, scriptlets and dependencies."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.packages.conftest import Built

pytestmark = pytest.mark.timeout(600)


def query(rpm: Path, *options: str) -> str:
    return subprocess.run(
        ["rpm", "-qp", *options, str(rpm)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def rpm(packages: Built) -> Path:
    assert packages.rpm is not None
    return packages.rpm


def test_identity_of_the_package(rpm: Path) -> None:
    info = query(rpm, "-i")
    assert "Name        : flotta-agent" in info
    assert "Release     : 1" in info
    assert "Architecture: x86_64" in info or "Architecture: aarch64" in info


def test_files_owners_and_modes(rpm: Path) -> None:
    listing = {}
    for line in query(rpm, "-lv").splitlines():
        fields = line.split()
        listing[fields[-1]] = (fields[0], fields[2], fields[3])
    assert listing["/usr/bin/flotta-agent"] == ("-rwxr-xr-x", "root", "root")
    assert listing["/usr/lib/systemd/system/flotta-agent.service"][0] == "-rw-r--r--"
    assert listing["/etc/flotta-agent"] == ("drwx------", "root", "root")
    assert listing["/etc/flotta-agent/agent.toml"] == ("-rw-------", "root", "root")
    assert listing["/var/lib/flotta-agent"] == ("drwx------", "root", "root")
    vendored = {path.split("/")[4] for path in listing if path.startswith("/usr/lib/flotta-agent/")}
    assert {"flotta", "paho", "msgspec", "cryptography", "yaml"} <= vendored
    assert not {"pydantic", "kubernetes", "nats"} & vendored
    # only the agent's part of flotta: no operator, bridge, dev tools or CRD models
    modules = [p for p in listing if p.startswith("/usr/lib/flotta-agent/flotta/")]
    assert any(p.endswith("/flotta/agent/daemon.py") for p in modules)
    assert not [p for p in modules if "/operator/" in p or "/dev/" in p or "/crd/" in p]
    assert not [p for p in listing if "__pycache__" in p]  # compiled on the device


def test_configuration_is_kept_on_upgrade(rpm: Path) -> None:
    assert query(rpm, "-c").split() == ["/etc/flotta-agent/agent.toml"]
    # %config(noreplace) shows as the "n" flag in the file flags dump
    flags = query(rpm, "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]")
    assert "cn /etc/flotta-agent/agent.toml" in flags


def test_dependencies(rpm: Path) -> None:
    requires = query(rpm, "--requires").splitlines()
    assert "python3.11" in requires
    assert any(line.startswith("glibc >= 2.") for line in requires)
    # nothing the vendored libraries would otherwise claim from, or offer to, the system
    assert not [line for line in requires if line.startswith(("libcrypto", "python3dist", "lib"))]
    provides = query(rpm, "--provides").splitlines()
    assert all(line.startswith("flotta-agent") for line in provides)
    assert "podman" in query(rpm, "--recommends").split()


def test_scriptlets(rpm: Path) -> None:
    scripts = query(rpm, "--scripts")
    assert "/usr/bin/python3.11 -m compileall" in scripts  # bytecode compiled on the device
    assert "systemctl try-restart flotta-agent.service" in scripts  # upgrade restarts
    preun = scripts.split("preuninstall scriptlet")[1].split("scriptlet")[0]
    assert "if [ $1 -eq 0 ]" in preun  # an upgrade does not stop the agent or drop bytecode
    assert "systemctl stop flotta-agent.service" in preun
    assert "/var/lib/flotta-agent" not in preun  # removal keeps the identity


def payload_file(rpm: Path, path: str) -> str:
    """One file of the payload (``rpm2archive``: the payload as a tar stream)."""
    with rpm.open("rb") as package:
        archive = subprocess.run(
            ["rpm2archive", "-"], stdin=package, capture_output=True, check=True
        ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile(f".{path}")
        assert member is not None
        return member.read().decode()


def test_unit_and_launcher_use_the_packaged_interpreter(rpm: Path) -> None:
    unit = payload_file(rpm, "/usr/lib/systemd/system/flotta-agent.service")
    assert "ExecStart=/usr/bin/python3.11 -m flotta.agent run" in unit
    assert "Environment=PYTHONPATH=/usr/lib/flotta-agent" in unit
    assert "ReadWritePaths=-/etc/ostree/remotes.d" in unit
    launcher = payload_file(rpm, "/usr/bin/flotta-agent")
    assert "exec /usr/bin/python3.11 -m flotta.agent" in launcher

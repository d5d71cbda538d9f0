"""The .deb installed on a Debian 12 container and its agent run against the local stack
(Kubernetes API, Mosquitto, operator, bridge): it enrols with a bootstrap certificate and
reports until its EdgeDevice is Online; an upgrade keeps its identity, buffers and edited
configuration; ``dpkg -r`` keeps the identity, ``dpkg --purge`` deletes it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningSystem, start_system, wait_until
from tests.packages.conftest import Built
from tests.packages.device import CONFIG, Device, PodmanSelection

pytestmark = [pytest.mark.podman, pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

DEVICE_ID = "edge-pkg-0001"
STATE = "/var/lib/flotta-agent"
IDENTITY = f"{STATE}/identity"


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[RunningSystem]:
    yield from start_system(tmp_path / "stack", devices=0, real_agent=False)


@pytest.fixture
def device(
    images_store: PodmanSelection, base_image: str, packages: Built, upgrade_deb: Built
) -> Iterator[Device]:
    """A container of the Debian 12 base image (``tests/fixtures/images.py``) with both
    builds of the .deb in /packages."""
    device = Device(images_store, f"flotta-pkg-{uuid.uuid4().hex[:8]}")
    device.start(base_image, [packages.deb, upgrade_deb.deb])
    try:
        yield device
    finally:
        device.remove()


def configure(device: Device, system: RunningSystem) -> None:
    """Credentials in /etc/flotta-agent and the broker in the packaged agent.toml, edited as
    an administrator would (the conffile is then locally modified)."""
    pki = system.layout.root / "pki"
    for source, name in (
        (pki / "ca.crt", "ca.crt"),
        (pki / "clients" / "bootstrap-local-agent.crt", "bootstrap.crt"),
        (pki / "clients" / "bootstrap-local-agent.key", "bootstrap.key"),
    ):
        device.write(f"/etc/flotta-agent/{name}", source.read_text())
    ports = {kind: int(url.rsplit(":", 1)[1]) for kind, url in system.endpoints.items()
             if kind in ("mqtt", "enrolment")}  # fmt: skip
    settings = {
        "device_id": f'"{DEVICE_ID}"',
        "broker_url": f'"mqtts://127.0.0.1:{ports["mqtt"]}"',
        "enrolment_url": f'"mqtts://127.0.0.1:{ports["enrolment"]}"',
        "heartbeat_seconds": "5",
    }
    text = device.read(CONFIG)
    for key, value in settings.items():
        text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert count == 1, key
    device.write(CONFIG, text)


def online(system: RunningSystem) -> dict[str, Any] | None:
    """The EdgeDevice Online with the hardware the agent reported (None: not yet)."""
    status = system.device(DEVICE_ID).get("status") or {}
    if status.get("phase") != "Online" or not status.get("hardware"):
        return None
    return status


def restart_without_enrolling(device: Device) -> None:
    """Stop the agent if it runs, start it again (what ``systemctl try-restart`` and
    ``enable --now`` do) and see it connect with the identity it has."""
    before = len(device.log())
    if device.agent_running():
        device.stop_agent()
    device.start_agent()
    wait_until(
        lambda: "connected to" in device.log()[before:],
        timeout=60,
        what="the agent's connection",
    )
    assert "enrolment request sent" not in device.log()[before:]


def test_install_enrol_report_upgrade_remove_purge(
    control_plane: RunningSystem, device: Device, packages: Built, upgrade_deb: Built
) -> None:
    system = control_plane

    # ---- install: files, owners, modes; nothing started ----------------------------------------
    device.dpkg("-i", f"/packages/{packages.deb.name}")
    assert device.package_status() == "install ok installed 0.1.0-1"
    assert device.mode(STATE) == "700 root:root"
    assert device.mode("/etc/flotta-agent") == "700 root:root"
    assert device.mode(CONFIG) == "600 root:root"
    assert device.exists("/usr/lib/flotta-agent/flotta/agent/__pycache__")  # compiled once
    assert not device.exists("/usr/lib/flotta-agent/flotta/operator")

    # ---- run it as its unit does: it enrols and reports -----------------------------------------
    configure(device, system)
    device.start_agent()
    status = wait_until(lambda: online(system), timeout=120, what="the packaged agent Online")
    assert status["hardware"]
    for name in ("device.key", "device.crt", "ca.crt"):
        assert device.mode(f"{IDENTITY}/{name}") == "600 root:root"
    # no Podman in this container: the agent says what it lacks and keeps going
    wait_until(lambda: "reconcile:" in device.log(), timeout=60, what="the Podman complaint")
    assert re.search(r"reconcile: .*podman.sock.*retrying", device.log()), device.log()
    assert device.agent_running()
    # the launcher in /usr/bin, for the person at the device
    shown = device.sh("flotta-agent status")
    assert f"device      {DEVICE_ID}" in shown
    assert ": connected" in shown, shown

    # ---- upgrade while it runs, then the restart systemd would do --------------------------------
    identity = {n: device.digest(f"{IDENTITY}/{n}") for n in ("device.key", "device.crt")}
    buffers = device.sh(f"cd {STATE} && find telemetry events -type f -name '*.sqlite3'").split()
    assert buffers, device.sh(f"find {STATE}")
    inodes = {path: device.inode(f"{STATE}/{path}") for path in buffers}
    edited = device.read(CONFIG)
    output = device.dpkg("-i", f"/packages/{upgrade_deb.deb.name}")
    assert "Unpacking flotta-agent (0.1.0-2) over (0.1.0-1)" in output
    assert "agent.toml" not in output  # no conffile question: the edit is simply kept
    assert device.package_status() == "install ok installed 0.1.0-2"
    assert device.read(CONFIG) == edited
    restart_without_enrolling(device)
    assert {n: device.digest(f"{IDENTITY}/{n}") for n in identity} == identity
    assert {path: device.inode(f"{STATE}/{path}") for path in buffers} == inodes
    wait_until(lambda: online(system), timeout=60, what="the upgraded agent Online")

    # ---- removal keeps the identity; purge deletes it ------------------------------------------
    device.stop_agent()  # what prerm's systemctl stop does on a device with systemd
    device.dpkg("-r", "flotta-agent")
    assert device.package_status() == "deinstall ok config-files 0.1.0-2"
    assert not device.exists("/usr/lib/flotta-agent")
    assert not device.exists("/usr/bin/flotta-agent")
    assert device.digest(f"{IDENTITY}/device.key") == identity["device.key"]
    assert device.read(CONFIG) == edited
    # installed again, it is the same device: no new enrolment
    device.dpkg("-i", f"/packages/{upgrade_deb.deb.name}")
    restart_without_enrolling(device)
    assert device.digest(f"{IDENTITY}/device.crt") == identity["device.crt"]
    device.stop_agent()
    device.dpkg("--purge", "flotta-agent")
    assert "no packages found" in device.package_status()
    for path in (STATE, "/etc/flotta-agent"):
        assert not device.exists(path)

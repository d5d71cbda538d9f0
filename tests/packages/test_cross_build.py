"""arm64 packages build on this x86-64 machine (nothing is compiled: the wheels are
fetched for the target), with arm64 code inside."""

from __future__ import annotations

import io
import platform
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.packages.conftest import build

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ELF_MACHINE = {183: "aarch64", 62: "x86_64"}  # e_machine


def machine_of(elf: bytes) -> str:
    assert elf[:4] == b"\x7fELF"
    return ELF_MACHINE.get(int.from_bytes(elf[18:20], "little"), "other")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="cross-builds from x86-64")
def test_arm64_deb_from_an_x86_64_machine(tmp_path: Path) -> None:
    built = build(tmp_path, revision="1", formats="deb", arch="arm64")
    assert built.deb.name.endswith("_arm64.deb")
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(built.deb), "Architecture", "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Architecture: arm64" in fields
    assert "Depends: python3.11, libc6 (>= 2." in fields
    payload = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(built.deb)], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        shared = [m for m in tar.getmembers() if m.name.endswith(".so")]
        assert any("msgspec" in m.name for m in shared)
        for member in shared:
            handle = tar.extractfile(member)
            assert handle is not None
            assert machine_of(handle.read(64)) == "aarch64", member.name

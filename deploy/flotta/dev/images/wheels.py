"""The control-plane image's Python packages, as wheels in its build context, so that the
image build itself reaches no network.

- ``app/``: the flotta wheel, built from this tree (hatchling's wheels are reproducible, so
  an unchanged tree gives the same bytes and Podman's layer cache holds);
- ``deps/``: every dependency of ``flotta[operator,bridge,exporter]``, binary wheels for the image's
  interpreter and platform (CPython 3.11, glibc 2.36: Debian bookworm), whatever Python
  runs the build;
- ``tools/``: pip's own wheel, which the build runs straight from the file (the image has
  no pip; nothing of it stays in the image).

Shared objects in the dependency wheels are stripped of their symbol tables
(``strip --strip-unneeded``, as Debian strips its packages; their RECORD is updated), which
takes 38 MB of them to 25 MB. Where ``strip`` is missing (binutils) they stay as they are.

pip fetches them with the user's own settings: offline, point it at a wheelhouse with
``PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels`` (fill one with ``flotta dev images
wheels --output DIR`` on a connected machine). A file already in place with the same bytes
is left alone (its modification time too).
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Debian bookworm: python3.11, glibc 2.36.
PYTHON_VERSION = "3.11"
GLIBC_MINOR = 36


def control_plane_extras() -> tuple[str, ...]:
    """The operator and the bridge, and the exporter once ``flotta exporter`` exists."""
    from flotta.cli import COMPONENTS

    return ("operator", "bridge", *(("exporter",) if "exporter" in COMPONENTS else ()))


class WheelError(RuntimeError):
    """pip could not build or fetch a wheel; the message has its output."""


def platform_tags(machine: str | None = None) -> list[str]:
    """Every manylinux tag a glibc 2.36 system accepts (pip does not expand the newest)."""
    arch = machine or platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 4, -1)]
    if arch in ("x86_64", "i686"):
        tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    elif arch in ("aarch64", "ppc64le", "s390x", "armv7l"):
        tags.append(f"manylinux2014_{arch}")
    return tags


def _pip(*args: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if completed.returncode != 0:
        raise WheelError(f"pip {' '.join(args[:2])} failed:\n{completed.stderr[-4000:]}")


def _sync(source: Path, target: Path) -> None:
    """Make ``target`` hold exactly the wheels in ``source``, touching no unchanged file."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = {path.name for path in source.glob("*.whl")}
    for existing in target.iterdir():
        if existing.name not in wanted:
            existing.unlink()
    for name in wanted:
        new = source / name
        old = target / name
        if not (old.exists() and filecmp.cmp(new, old, shallow=False)):
            shutil.copyfile(new, old)


def _binary_only() -> list[str]:
    """pip options that pick wheels for the image's interpreter, not the running one."""
    return [
        "--only-binary=:all:",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        *(f"--platform={tag}" for tag in platform_tags()),
    ]


def _build_app(repo_root: Path, app: Path) -> Path:
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(app), str(repo_root))
    (wheel,) = app.glob("flotta-*.whl")
    return wheel


def _fetch(wheel: Path, deps: Path, tools: Path, extras: tuple[str, ...]) -> None:
    requirement = f"{wheel}[{','.join(extras)}]"
    _pip("download", "--quiet", *_binary_only(), "--dest", str(deps), requirement)
    for copy in deps.glob("flotta-*.whl"):
        copy.unlink()
    _pip("download", "--quiet", "--no-deps", *_binary_only(), "--dest", str(tools), "pip")


def strip_wheel(wheel: Path) -> bool:
    """Strip the shared objects in ``wheel`` (rewritten in place, entries in their order
    and with their dates, so the result is the same every time); True when it changed."""
    shared_object = re.compile(r"\.so(\.[0-9]+)*$")
    with zipfile.ZipFile(wheel) as source, tempfile.TemporaryDirectory() as tmp:
        infos = source.infolist()
        stripped: dict[str, bytes] = {}
        scratch = Path(tmp) / "object"
        for info in infos:
            if not shared_object.search(info.filename):
                continue
            scratch.write_bytes(source.read(info))
            subprocess.run(["strip", "--strip-unneeded", str(scratch)], check=True, timeout=120)
            data = scratch.read_bytes()
            if len(data) < info.file_size:
                stripped[info.filename] = data
        if not stripped:
            return False
        (record,) = (i.filename for i in infos if i.filename.endswith(".dist-info/RECORD"))
        output = Path(tmp) / wheel.name
        with zipfile.ZipFile(output, "w") as target:
            for info in infos:
                if info.filename == record:
                    data = _record(source.read(info).decode(), stripped).encode()
                else:
                    data = stripped.get(info.filename) or source.read(info)
                target.writestr(info, data)
        os.replace(output, wheel)
    return True


def _record(text: str, changed: dict[str, bytes]) -> str:
    lines = []
    for line in text.splitlines():
        name = line.rsplit(",", 2)[0]
        if name in changed:
            digest = base64.urlsafe_b64encode(hashlib.sha256(changed[name]).digest())
            line = f"{name},sha256={digest.rstrip(b'=').decode()},{len(changed[name])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def requirements_key(wheel: Path, extras: tuple[str, ...]) -> str:
    """What decides the dependency wheels: flotta's requirements, the extras, the target."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    requires = sorted(line for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    inputs = [requires, list(extras), _binary_only(), shutil.which("strip") is not None]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def build_wheelhouse(repo_root: Path, context: Path, *, refresh: bool = False) -> None:
    """Fill ``context/{app,deps,tools}`` (see the module docstring). The dependencies are
    resolved again only when flotta's requirements changed (or ``refresh``): a re-run needs
    no index, and picks no newer release up by itself."""
    extras = control_plane_extras()
    with tempfile.TemporaryDirectory(prefix="flotta-wheels-") as tmp:
        app, deps, tools = (Path(tmp) / name for name in ("app", "deps", "tools"))
        wheel = _build_app(repo_root, app)
        _sync(app, context / "app")
        key = requirements_key(wheel, extras)
        stamp = context / "deps.key"
        if not refresh and stamp.exists() and stamp.read_text() == key:
            return
        _fetch(wheel, deps, tools, extras)
        if shutil.which("strip") is not None:
            for dependency in deps.glob("*.whl"):
                strip_wheel(dependency)
        for name, source in (("deps", deps), ("tools", tools)):
            _sync(source, context / name)
        stamp.write_text(key)


def fill_wheelhouse(repo_root: Path, output: Path) -> None:
    """Every wheel :func:`build_wheelhouse` needs, in one flat directory, plus the build
    backend (hatchling) that builds the flotta wheel on the build machine, so that
    ``PIP_NO_INDEX=1 PIP_FIND_LINKS=output`` makes the build work without an index."""
    output.mkdir(parents=True, exist_ok=True)
    _pip("download", "--quiet", "--dest", str(output), "hatchling>=1.21")
    with tempfile.TemporaryDirectory(prefix="flotta-wheels-") as tmp:
        wheel = _build_app(repo_root, Path(tmp) / "app")
        _fetch(wheel, output, output, control_plane_extras())

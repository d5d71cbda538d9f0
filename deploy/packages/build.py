"""Build the device agent's .deb and .rpm: the agent with its own Python dependencies, for one
CPython minor version and one CPU architecture, without PyPI on the device.

    python deploy/packages/build.py [--arch amd64|arm64] [--python 3.11] [--revision N]

Steps:

1. The dependencies are the base ones and the ``agent`` extra of ``pyproject.toml``, at the
   versions installed in the environment running this script (the ones the test suite ran
   against), fetched as wheels for the target (``pip install --target`` with
   ``--platform``/``--abi``): nothing is compiled, so arm64 packages build on an x86-64 host.
2. The ``flotta`` modules the agent imports (followed statically through every ``import``,
   including those inside functions) are copied next to them into ``/usr/lib/flotta-agent``.
3. One staged tree (launcher, systemd unit, default configuration, docs) becomes a .deb
   (``dpkg-deb``) and an .rpm (``rpmbuild``, spec from ``flotta-agent.spec.in``); the
   maintainer scripts are the files next to this one.

The packages depend on ``pythonX.Y`` (compiled wheels are bound to one CPython ABI) and on the
C library the wheels' manylinux tags require. Output: ``dist/packages/``.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE = "flotta-agent"
LIB = Path("usr/lib/flotta-agent")
UNIT_DIR = Path("usr/lib/systemd/system")
SOURCE_ROOTS = ("schemas", "agent")  # where the agent's flotta modules live
ROOT_MODULE = "flotta.agent"
# Debian architecture -> (RPM architecture, manylinux machine name)
ARCHES = {"amd64": ("x86_64", "x86_64"), "arm64": ("aarch64", "aarch64")}
# manylinux tags a device of the targets accepts: RHEL 9 has glibc 2.34, Debian 12 2.36.
GLIBC_CEILING = 34
MAINTAINER = "Flotta maintainers <maintainers@flotta.invalid>"
SUMMARY = "Flotta device agent: enrolment, desired state, Podman workloads, telemetry"
DESCRIPTION = (
    "The device side of Flotta: enrols with a bootstrap certificate, holds an MQTT v5 session\n"
    "over mutual TLS, runs the desired container workloads with Podman, reports status and\n"
    "buffers telemetry on disk while offline. Carries its own Python dependencies in\n"
    "/usr/lib/flotta-agent (/usr/share/doc/flotta-agent/vendored.txt lists them)."
)


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    deb_arch: str
    python: str  # "3.11"
    version: str  # upstream version, from pyproject.toml
    revision: str  # package revision

    @property
    def rpm_arch(self) -> str:
        return ARCHES[self.deb_arch][0]

    @property
    def interpreter(self) -> str:
        return f"/usr/bin/python{self.python}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def platforms(self) -> list[str]:
        machine = ARCHES[self.deb_arch][1]
        tags = [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_CEILING, 16, -1)]
        return [*tags, f"manylinux2014_{machine}"]


# ---- the staged tree ------------------------------------------------------------------------


def requirements() -> tuple[str, list[str]]:
    """The version and the agent's dependencies (base + ``agent`` extra) from pyproject."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    agent = project["optional-dependencies"]["agent"]
    return project["version"], [*project["dependencies"], *agent]


def pinned_versions() -> str:
    """Constraints: what this environment has installed (the versions the tests ran with)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "".join(line + "\n" for line in frozen.splitlines() if "==" in line)


def vendor(target: Target, lib: Path, work: Path) -> None:
    constraints = work / "constraints.txt"
    constraints.write_text(pinned_versions())
    platform_args = [arg for tag in target.platforms for arg in ("--platform", tag)]
    _run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "-qq",  # errors only: a machine's pip configuration may warn about its indexes
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(lib),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target.python,
        "--abi",
        target.abi,
        *platform_args,
        "--constraint",
        str(constraints),
        *requirements()[1],
    )
    shutil.rmtree(lib / "bin", ignore_errors=True)  # console scripts of the dependencies


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    for root in SOURCE_ROOTS:
        base = REPO / root / Path(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def flotta_imports(path: Path) -> set[str]:
    """Every ``flotta`` module ``path`` may import, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] == "flotta"}


def agent_modules() -> dict[str, Path]:
    """``flotta.agent`` and everything it imports from ``flotta``, with their parents."""
    agent_root = REPO / "agent" / "flotta" / "agent"
    pending = [
        ".".join(p.relative_to(REPO / "agent").with_suffix("").parts).removesuffix(".__init__")
        for p in agent_root.rglob("*.py")
    ]
    modules: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in modules:
            continue
        path = module_file(name)
        if path is None:
            continue  # ``from flotta.x import some_function``: not a module
        modules[name] = path
        pending.extend(flotta_imports(path))
        parent = name.rpartition(".")[0]
        if parent and parent != "flotta":
            pending.append(parent)
    return modules


def copy_modules(lib: Path) -> list[str]:
    names = sorted(agent_modules())
    for name in names:
        source = module_file(name)
        assert source is not None
        root = next(REPO / r for r in SOURCE_ROOTS if source.is_relative_to(REPO / r))
        destination = lib / source.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    return names


def glibc_floor(lib: Path) -> str | None:
    """The C library the vendored wheels need: for each wheel the oldest manylinux it is
    tagged for, and the newest of those over all wheels (None: no compiled wheel)."""
    floors: list[int] = []
    for wheel in lib.glob("*.dist-info/WHEEL"):
        minors = [
            int(m.group(1)) if m.group(1) else 17
            for tag in re.findall(r"^Tag: (\S+)", wheel.read_text(), re.M)
            if (m := re.search(r"manylinux_2_(\d+)|manylinux2014", tag))
        ]
        if minors:
            floors.append(min(minors))
    return f"2.{max(floors)}" if floors else None


def vendored_list(lib: Path) -> str:
    lines = [
        "Python distributions vendored in /usr/lib/flotta-agent (their licence files are in",
        "the .dist-info folders there):",
        "",
    ]
    parser = email.parser.HeaderParser()
    for metadata in sorted(lib.glob("*.dist-info/METADATA")):
        headers = parser.parsestr(metadata.read_text(errors="replace"))
        classifiers = [
            c.rsplit(" :: ", 1)[-1]
            for c in headers.get_all("Classifier") or []
            if c.startswith("License ::")
        ]
        licence = headers.get("License-Expression") or headers.get("License") or ""
        licence = licence.splitlines()[0] if licence else ", ".join(classifiers)
        licence = licence or "see its licence files"
        lines.append(f"{headers['Name']} {headers['Version']}: {licence}")
    return "\n".join(lines) + "\n"


def stage(target: Target, root: Path, work: Path) -> tuple[str | None, list[str]]:
    lib = root / LIB
    lib.mkdir(parents=True)
    vendor(target, lib, work)
    modules = copy_modules(lib)
    python_line = "/usr/bin/python3.11"
    unit = (REPO / "agent/packaging/flotta-agent.service").read_text()
    if python_line not in unit:
        raise BuildError(f"the unit's ExecStart no longer names {python_line}")
    _write(root / UNIT_DIR / "flotta-agent.service", unit.replace(python_line, target.interpreter))
    launcher = (HERE / "flotta-agent").read_text().replace("@PYTHON@", target.interpreter)
    _write(root / "usr/bin/flotta-agent", launcher, mode=0o755)
    _write(
        root / "etc/flotta-agent/agent.toml",
        (REPO / "agent/packaging/agent.toml").read_text(),
        mode=0o600,
    )
    (root / "etc/flotta-agent").chmod(0o700)
    (root / "var/lib/flotta-agent").mkdir(parents=True, mode=0o700)
    (root / "var/lib/flotta-agent").chmod(0o700)
    docs = root / "usr/share/doc" / PACKAGE
    _write(docs / "README.md", (REPO / "agent/README.md").read_text())
    _write(docs / "agent-install.md", (REPO / "docs/agent-install.md").read_text())
    _write(docs / "vendored.txt", vendored_list(lib))
    _write(docs / "copyright", COPYRIGHT)
    greenboot = REPO / "agent/packaging/greenboot/40_flotta_agent_check.sh"
    _write(
        root / "usr/share/flotta-agent/greenboot" / greenboot.name,
        greenboot.read_text(),
        mode=0o755,
    )
    return glibc_floor(lib), modules


COPYRIGHT = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    "Upstream-Name: flotta\n\n"
    "Files: usr/lib/flotta-agent/flotta/*\nLicense: Apache-2.0\n\n"
    "Files: usr/lib/flotta-agent/*\n"
    "Comment: vendored Python distributions; each one's licence is in its .dist-info\n"
    " folder, and usr/share/doc/flotta-agent/vendored.txt lists them.\n"
    "License: various\n"
)


# ---- .deb -----------------------------------------------------------------------------------


def build_deb(target: Target, root: Path, work: Path, out: Path, glibc: str | None) -> Path:
    tree = work / "deb"
    shutil.copytree(root, tree, symlinks=True)
    control = tree / "DEBIAN"
    control.mkdir(mode=0o755)
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file()) // 1024
    depends = [f"python{target.python}"]
    if glibc:
        depends.append(f"libc6 (>= {glibc})")
    _write(
        control / "control",
        f"Package: {PACKAGE}\n"
        f"Version: {target.version}-{target.revision}\n"
        f"Architecture: {target.deb_arch}\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {size}\n"
        f"Depends: {', '.join(depends)}\n"
        "Recommends: podman\n"
        "Section: admin\n"
        "Priority: optional\n"
        f"Description: {SUMMARY}\n"
        + "".join(f" {line}\n" if line else " .\n" for line in DESCRIPTION.splitlines()),
    )
    _write(control / "conffiles", "/etc/flotta-agent/agent.toml\n")
    for script in ("postinst", "prerm", "postrm"):
        text = (HERE / "debian" / script).read_text().replace("@PYTHON@", target.interpreter)
        _write(control / script, text, mode=0o755)
    path = out / f"{PACKAGE}_{target.version}-{target.revision}_{target.deb_arch}.deb"
    _run("dpkg-deb", "--root-owner-group", "--build", str(tree), str(path))
    return path


# ---- .rpm -----------------------------------------------------------------------------------


def build_rpm(target: Target, root: Path, work: Path, out: Path, glibc: str | None) -> Path:
    topdir = work / "rpm"
    for sub in ("BUILD", "RPMS", "SPECS", "SRPMS", "BUILDROOT"):
        (topdir / sub).mkdir(parents=True)
    requires = [f"python{target.python}"]
    if glibc:
        requires.append(f"glibc >= {glibc}")
    spec = (HERE / "flotta-agent.spec.in").read_text()
    for key, value in {
        "@NAME@": PACKAGE,
        "@VERSION@": target.version,
        "@RELEASE@": target.revision,
        "@SUMMARY@": SUMMARY,
        "@DESCRIPTION@": DESCRIPTION,
        "@REQUIRES@": "\n".join(f"Requires: {r}" for r in requires),
        "@STAGED@": str(root),
        "@PYTHON@": target.interpreter,
        "@LIB@": f"/{LIB}",
        "@UNIT_DIR@": f"/{UNIT_DIR}",
    }.items():
        spec = spec.replace(key, value)
    spec_path = topdir / "SPECS" / f"{PACKAGE}.spec"
    spec_path.write_text(spec)
    _run(
        "rpmbuild",
        "-bb",
        "--quiet",
        "--target",
        f"{target.rpm_arch}-linux",
        "--define",
        f"_topdir {topdir}",
        "--define",
        f"_rpmdir {out}",
        "--define",
        "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
        str(spec_path),
    )
    return out / f"{PACKAGE}-{target.version}-{target.revision}.{target.rpm_arch}.rpm"


# ---- driver ---------------------------------------------------------------------------------


def host_arch() -> str:
    machine = platform.machine()
    for deb, (rpm, _) in ARCHES.items():
        if machine in (deb, rpm):
            return deb
    raise BuildError(f"no package architecture for this machine ({machine}); pass --arch")


def build(target: Target, *, out: Path, work: Path, formats: list[str]) -> list[Path]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    root = work / "root"
    glibc, modules = stage(target, root, work)
    print(f"staged {len(modules)} flotta modules; needs glibc >= {glibc}", flush=True)
    built = []
    if "deb" in formats:
        built.append(build_deb(target, root, work, out, glibc))
    if "rpm" in formats:
        built.append(build_rpm(target, root, work, out, glibc))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHES), help="default: this machine's")
    parser.add_argument("--python", default="3.11", help="target CPython X.Y (default 3.11)")
    parser.add_argument("--revision", default="1", help="package revision (default 1)")
    parser.add_argument("--version", help="upstream version (default: pyproject.toml's)")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "packages")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "agent-packages")
    parser.add_argument("--formats", default="deb,rpm", help="deb,rpm (default both)")
    args = parser.parse_args(argv)
    try:
        target = Target(
            deb_arch=args.arch or host_arch(),
            python=args.python,
            version=args.version or requirements()[0],
            revision=args.revision,
        )
        started = time.monotonic()
        built = build(
            target,
            out=args.out.resolve(),
            work=args.work.resolve(),
            formats=args.formats.split(","),
        )
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    for path in built:
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"built in {time.monotonic() - started:.1f} s")
    return 0


def _write(path: Path, text: str, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _run(*command: str) -> None:
    environment = dict(os.environ)
    environment.setdefault("SOURCE_DATE_EPOCH", _source_date())
    subprocess.run(command, check=True, env=environment)


def _source_date() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True
    )
    return done.stdout.strip() or str(int(time.time()))


if __name__ == "__main__":
    sys.exit(main())

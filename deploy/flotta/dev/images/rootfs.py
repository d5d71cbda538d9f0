"""Debian root filesystems made with ``mmdebstrap`` from Debian's own packages, cached as
tarballs under the build dir, keyed by everything that goes into them.

``--variant=essential`` installs only the packages Debian marks Essential (dpkg, coreutils,
a shell, ...), then the ones named here; no apt, no documentation but the copyright files,
no man pages, locales or gconv modules. ``usr-is-merged`` is installed by mmdebstrap's
merged-usr hook: left to apt, ``init-system-helpers`` would pull ``usrmerge`` and with it
the whole of Perl (50 MB).

The packages come from ``FLOTTA_DEBIAN_MIRROR`` (default ``http://deb.debian.org/debian``)
and ``FLOTTA_DEBIAN_SECURITY_MIRROR`` (``none`` leaves the security suite out): point
them at a local mirror (``file:///srv/debian``) or an apt proxy
(``http://127.0.0.1:3142/deb.debian.org/debian``) to build without the internet. A cached
tarball is used until one of the inputs changes; ``refresh=True``
(``flotta dev images --refresh``) rebuilds it to pick up Debian's updates.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
MIRROR_ENV = "FLOTTA_DEBIAN_MIRROR"
SECURITY_MIRROR_ENV = "FLOTTA_DEBIAN_SECURITY_MIRROR"
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
# Left out of every package as dpkg unpacks it (the copyright files stay).
PATH_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/lib/*/gconv/*",
)


class RootfsError(RuntimeError):
    """A root filesystem could not be made; the message says why."""


@dataclass(frozen=True, slots=True)
class RootfsSpec:
    """One root filesystem: a name and the Debian packages installed on top of Essential."""

    name: str
    packages: tuple[str, ...]

    def sources(self) -> list[str]:
        mirror = os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
        security = os.environ.get(SECURITY_MIRROR_ENV) or DEFAULT_SECURITY_MIRROR
        lines = [
            f"deb {mirror} {SUITE} main",
            f"deb {mirror} {SUITE}-updates main",
        ]
        if security != "none":
            lines.append(f"deb {security} {SUITE}-security main")
        return lines

    def argv(self, output: Path) -> list[str]:
        """The ``mmdebstrap`` command that writes this root filesystem to ``output``."""
        return [
            "mmdebstrap",
            "--quiet",
            "--variant=essential",
            f"--architectures={debian_architecture()}",
            f"--hook-dir={MERGED_USR_HOOKS}",
            f"--include={','.join(self.packages)}",
            *(f"--dpkgopt={option}" for option in PATH_EXCLUDES),
            # Nothing the image needs: dpkg's logs and backups of its database.
            "--customize-hook=rm -f"
            ' "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/apt/*'
            ' "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old',
            SUITE,
            str(output),
            *self.sources(),
        ]

    def key(self) -> str:
        """A digest of every input: package list, mirrors, options, mmdebstrap's version."""
        inputs = {
            "argv": self.argv(Path("rootfs.tar")),
            "mmdebstrap": mmdebstrap_version(),
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


BASE = RootfsSpec("debian-base", ("python3", "ca-certificates", "netbase"))
BROKER = RootfsSpec("broker-base", ("mosquitto", "netbase"))


def debian_architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def mmdebstrap_version() -> str:
    if shutil.which("mmdebstrap") is None:
        raise RootfsError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    completed = subprocess.run(
        ["mmdebstrap", "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return completed.stdout.strip()


def ensure_rootfs(
    spec: RootfsSpec,
    cache_dir: Path,
    *,
    refresh: bool = False,
    say: Callable[[str], None] = print,
) -> Path:
    """The tarball of ``spec`` in ``cache_dir``, made unless a tarball with the same key is
    there (or ``refresh``). Written beside its final name and renamed, so an interrupted
    build never leaves a tarball that looks complete."""
    target = cache_dir / f"{spec.name}-{SUITE}-{spec.key()}.tar"
    if target.exists() and not refresh:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.tar")
    say(f"mmdebstrap: {spec.name} ({', '.join(spec.packages)}) from {spec.sources()[0]}")
    started = time.monotonic()
    completed = subprocess.run(
        spec.argv(partial),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if completed.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RootfsError(f"mmdebstrap failed for {spec.name}:\n{completed.stderr[-4000:]}")
    partial.replace(target)
    for stale in cache_dir.glob(f"{spec.name}-{SUITE}-*"):
        if not stale.name.startswith(target.name):  # keeps the tarball and its .sha256
            stale.unlink()
    say(f"mmdebstrap: {target.name} in {time.monotonic() - started:.0f} s")
    return target

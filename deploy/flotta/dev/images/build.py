"""Build the images: the Debian base (imported from a cached mmdebstrap tarball), the
control-plane image and the broker image, each only when its inputs changed.

- ``localhost/flotta/debian-base:bookworm``: Essential + python3, ca-certificates, netbase.
  Also tagged ``bookworm-<digest of the tarball>``, which is what the other builds use.
- ``localhost/flotta-control-plane:VERSION``: ``deploy/container/Containerfile``.
- ``localhost/flotta-broker:VERSION``: ``deploy/container/Containerfile.broker`` on a base
  of its own (Essential + mosquitto, no Python).

A re-run costs a pip resolution and Podman's layer cache look-ups; the build dir (default
``build/images``) holds the tarballs and the contexts, and is safe to delete.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from flotta.dev.images import rootfs, wheels
from flotta.dev.images.podman_store import PodmanStore
from flotta.dev.podman import PodmanUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "images"
CONTAINERFILES = REPO_ROOT / "deploy" / "container"
BASE_IMAGE = "localhost/flotta/debian-base"
BROKER_BASE_IMAGE = "localhost/flotta/broker-base"
CONTROL_PLANE_IMAGE = "localhost/flotta-control-plane"
BROKER_IMAGE = "localhost/flotta-broker"
KEY_LABEL = "io.flotta.rootfs.sha256"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the OCI labels say: ``org.opencontainers.image.{version,revision,source}``."""

    version: str
    revision: str
    source: str

    @classmethod
    def of(cls, repo_root: Path = REPO_ROOT) -> Provenance:
        project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
        revision = _git(repo_root, "rev-parse", "HEAD") or "unknown"
        if revision != "unknown" and _git(
            repo_root, "status", "--porcelain", "--untracked-files=no"
        ):
            revision += "-dirty"
        source = _git(repo_root, "remote", "get-url", "origin") or str(
            project.get("urls", {}).get("Source", "unknown")
        )
        return cls(version=str(project["version"]), revision=revision, source=source)

    def labels(self, base: str) -> list[str]:
        """``podman build --label`` options: set on the image at every build, never taken
        from the layer cache (a LABEL instruction with build arguments would be)."""
        oci = "org.opencontainers.image"
        return [
            f"--label={oci}.version={self.version}",
            f"--label={oci}.revision={self.revision}",
            f"--label={oci}.source={self.source}",
            f"--label={oci}.base.name={base}",
        ]


def _git(repo_root: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(repo_root), *args], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() if completed.returncode == 0 else ""


@dataclass
class Builder:
    """Builds into ``store``, keeping tarballs and contexts in ``build_dir``."""

    store: PodmanStore = field(default_factory=PodmanStore.default)
    build_dir: Path = DEFAULT_BUILD_DIR
    refresh: bool = False
    say: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)
    _refreshed: set[str] = field(default_factory=set)  # what this run made again already

    def _refresh(self, what: str) -> bool:
        """``refresh`` once per run: a second image on the same base reuses the new one."""
        first = self.refresh and what not in self._refreshed
        self._refreshed.add(what)
        return first

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One build at a time per build dir (two test sessions, or make and a test)."""
        self.build_dir.mkdir(parents=True, exist_ok=True)
        with (self.build_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        spent = self.timings.get(step, 0.0) + time.monotonic() - started
        self.timings[step] = round(spent, 1)

    # ---- the bases ----------------------------------------------------------------------

    def _import(self, spec: rootfs.RootfsSpec, repository: str) -> str:
        """Import ``spec``'s tarball as ``repository:bookworm-DIGEST`` (unless there) and
        point ``repository:bookworm`` at it; returns the digest-tagged name."""
        with self._timed(f"rootfs {spec.name}"):
            tarball = rootfs.ensure_rootfs(
                spec, self.build_dir / "rootfs", refresh=self._refresh(spec.name), say=self.say
            )
        digest = _file_digest(tarball)[:16]
        pinned = f"{repository}:{rootfs.SUITE}-{digest}"
        if not self.store.exists(pinned):
            with self._timed(f"import {spec.name}"):
                self.store.podman(
                    "import",
                    f"--change=ENV PATH={DEBIAN_PATH}",
                    '--change=CMD ["/bin/bash"]',
                    f"--change=LABEL {KEY_LABEL}={_file_digest(tarball)}",
                    f"--change=LABEL org.opencontainers.image.title={spec.name}",
                    f"--message=mmdebstrap {rootfs.SUITE}: {' '.join(spec.packages)}",
                    str(tarball),
                    pinned,
                )
            self.say(f"imported {pinned}")
        self.store.podman("tag", pinned, f"{repository}:{rootfs.SUITE}")
        return pinned

    def base_image(self) -> str:
        """The Debian base (python3, ca-certificates), built if missing; its pinned name."""
        with self._locked():
            return self._import(rootfs.BASE, BASE_IMAGE)

    # ---- the images ---------------------------------------------------------------------

    def _build(self, name: str, containerfile: Path, context: Path, base: str) -> str:
        provenance = Provenance.of()
        tag = f"{name}:{provenance.version}"
        before = self._image_id(tag)
        with self._timed(f"build {name.rsplit('/', 1)[-1]}"):
            self.store.podman(
                "build",
                "--layers",
                "--pull=never",
                "--network=none",
                f"--file={containerfile}",
                f"--build-arg=BASE_IMAGE={base}",
                *provenance.labels(base),
                f"--tag={tag}",
                str(context),
                timeout=1800,
            )
        if before and before != self._image_id(tag) and self.store.isolated:
            # The image this one replaces, with the layers only it used. Not `image prune`:
            # the build stages' last layers are dangling too, and they are the cache.
            with suppress(PodmanUnavailableError):  # a container still uses it
                self.store.podman("rmi", before)
        self.say(f"built {tag} ({self.store.size(tag) / 1e6:.0f} MB)")
        return tag

    def _image_id(self, image: str) -> str:
        return str(self.store.inspect(image)["Id"]) if self.store.exists(image) else ""

    def control_plane_image(self) -> str:
        with self._locked():
            base = self._import(rootfs.BASE, BASE_IMAGE)
            context = self.build_dir / "context" / "control-plane"
            with self._timed("wheels"):
                wheels.build_wheelhouse(REPO_ROOT, context, refresh=self._refresh("wheels"))
            return self._build(CONTROL_PLANE_IMAGE, CONTAINERFILES / "Containerfile", context, base)

    def broker_image(self) -> str:
        with self._locked():
            base = self._import(rootfs.BROKER, BROKER_BASE_IMAGE)
            context = self.build_dir / "context" / "broker"
            context.mkdir(parents=True, exist_ok=True)
            return self._build(BROKER_IMAGE, CONTAINERFILES / "Containerfile.broker", context, base)


def _file_digest(path: Path) -> str:
    sums = path.with_name(path.name + ".sha256")
    if sums.exists() and sums.stat().st_mtime >= path.stat().st_mtime:
        return sums.read_text().strip()
    with path.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    sums.write_text(digest + "\n")
    return digest

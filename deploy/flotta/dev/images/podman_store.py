"""Which Podman the images are built into: the user's own (``podman images`` shows them), or
an isolated store configured like the tests' (``flotta.dev.podman.write_config``: runc,
cgroupfs, nothing pulled), which the tests use so that they never touch the user's store.

The isolated store uses the overlay driver where the kernel has it and the directory is not
itself on an overlay (a build with vfs copies the whole root file system at every step: a
re-build took minutes instead of seconds); ``FLOTTA_IMAGES_DRIVER=vfs`` forces vfs. The two
drivers keep their images in different directories of the store.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flotta.dev.podman import image_exists, podman, write_config

DRIVER_ENV = "FLOTTA_IMAGES_DRIVER"


@dataclass(frozen=True, slots=True)
class PodmanStore:
    """A Podman to run commands against: ``env`` selects its configuration and storage
    (empty: the user's default Podman)."""

    env: Mapping[str, str] = field(default_factory=dict)
    isolated: bool = False

    @classmethod
    def default(cls) -> PodmanStore:
        return cls()

    @classmethod
    def at(cls, state_dir: Path) -> PodmanStore:
        """An isolated store rooted at ``state_dir`` (created, configuration rewritten)."""
        environment = write_config(state_dir)
        driver = os.environ.get(DRIVER_ENV) or storage_driver(environment.state_dir)
        if driver != "vfs":
            root = environment.state_dir
            environment.storage_conf.write_text(
                "[storage]\n"
                f"driver = {json.dumps(driver)}\n"
                f"graphroot = {json.dumps(str(root / driver))}\n"
                f"runroot = {json.dumps(str(root / 'runroot'))}\n"
            )
        return cls(env=environment.env, isolated=True)

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def podman(self, *args: str, timeout: float = 600) -> str:
        """Run ``podman ARGS``; its stdout, or ``PodmanUnavailableError`` with its stderr."""
        return podman(self, *args, timeout=timeout)

    def exists(self, image: str) -> bool:
        return image_exists(self, image)

    def inspect(self, image: str) -> dict[str, object]:
        documents: list[dict[str, object]] = json.loads(self.podman("image", "inspect", image))
        return documents[0]

    def size(self, image: str) -> int:
        """The image's size in bytes, all layers, as ``podman images`` shows it."""
        size = self.inspect(image)["Size"]
        assert isinstance(size, int)
        return size

    def labels(self, image: str) -> dict[str, str]:
        labels = self.inspect(image).get("Labels") or {}
        assert isinstance(labels, dict)
        return {str(k): str(v) for k, v in labels.items()}


def storage_driver(directory: Path) -> str:
    """``overlay`` where the kernel has it and ``directory`` is not on an overlay, else
    ``vfs``."""
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        return "vfs"
    if "\toverlay\n" not in filesystems:
        return "vfs"
    completed = subprocess.run(
        ["stat", "--file-system", "--format=%T", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "vfs" if completed.stdout.strip() in ("overlayfs", "overlay") else "overlay"

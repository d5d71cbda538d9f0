"""Which Podman the images are built into: the user's own (``podman images`` shows them), or
an isolated store configured like the tests' (``flotta.dev.podman.write_config``: vfs, runc,
cgroupfs, nothing pulled), which the tests use so that they never touch the user's store."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flotta.dev.podman import write_config


class PodmanError(RuntimeError):
    """A podman command failed; the message has its stderr."""


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
        return cls(env=write_config(state_dir).env, isolated=True)

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def podman(self, *args: str, timeout: float = 600) -> str:
        """Run ``podman ARGS``; its stdout, or :class:`PodmanError` with its stderr."""
        completed = subprocess.run(
            ["podman", *args],
            capture_output=True,
            env=self.process_env(),
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if completed.returncode != 0:
            message = completed.stderr.decode(errors="replace").strip()[-4000:]
            raise PodmanError(f"podman {' '.join(args)} failed: {message}")
        return completed.stdout.decode(errors="replace")

    def exists(self, image: str) -> bool:
        completed = subprocess.run(
            ["podman", "image", "exists", image],
            env=self.process_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        return completed.returncode == 0

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

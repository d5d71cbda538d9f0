"""Container images built from Debian's packages with Podman and no container registry
(``make images``; docs/images.md): a Debian bookworm base made with mmdebstrap, the
control-plane image and the broker image.

For other code (tests, benchmarks)::

    from flotta.dev.images import Builder, PodmanStore
    builder = Builder(store=PodmanStore.at(build_dir / "podman"))
    base = builder.base_image()  # "localhost/flotta/debian-base:bookworm-<digest>"
"""

from flotta.dev.images.build import (
    BASE_IMAGE,
    BROKER_IMAGE,
    CONTROL_PLANE_IMAGE,
    DEFAULT_BUILD_DIR,
    Builder,
    Provenance,
)
from flotta.dev.images.podman_store import PodmanStore
from flotta.dev.images.rootfs import RootfsError
from flotta.dev.images.wheels import WheelError
from flotta.dev.podman import PodmanUnavailableError

__all__ = [
    "BASE_IMAGE",
    "BROKER_IMAGE",
    "CONTROL_PLANE_IMAGE",
    "DEFAULT_BUILD_DIR",
    "Builder",
    "PodmanStore",
    "PodmanUnavailableError",
    "Provenance",
    "RootfsError",
    "WheelError",
]

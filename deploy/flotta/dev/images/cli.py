"""``flotta dev images``: build the images from Debian's packages (``make images``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TARGETS = ("base", "control-plane", "broker")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help=f"what to build, of {', '.join(TARGETS)} (default: all)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="build into an isolated Podman store in this directory (default: your Podman)",
    )
    parser.add_argument(
        "--build-dir", type=Path, help="tarballs and contexts (default: build/images)"
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="run mmdebstrap and resolve the Python dependencies again even if their inputs "
        "did not change (to pick up Debian's and PyPI's updates)",
    )
    parser.add_argument(
        "--report", type=Path, help="write the images' names, sizes and step timings (JSON)"
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        metavar="DIR",
        help="only fill DIR with every wheel the build needs, for an offline machine "
        "(then: PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR make images)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from flotta.dev.images import wheels
    from flotta.dev.images.build import DEFAULT_BUILD_DIR, REPO_ROOT, Builder
    from flotta.dev.images.podman_store import PodmanStore
    from flotta.dev.images.rootfs import RootfsError
    from flotta.dev.podman import PodmanUnavailableError

    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        print(f"flotta dev images: unknown target {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.wheelhouse is not None:
        try:
            wheels.fill_wheelhouse(REPO_ROOT, args.wheelhouse)
        except wheels.WheelError as error:
            print(f"flotta dev images: {error}", file=sys.stderr)
            return 1
        print(f"wheelhouse {args.wheelhouse}: {len(list(args.wheelhouse.glob('*.whl')))} wheels")
        return 0
    store = PodmanStore.default() if args.store is None else PodmanStore.at(args.store)
    builder = Builder(
        store=store, build_dir=args.build_dir or DEFAULT_BUILD_DIR, refresh=args.refresh
    )
    steps = {
        "base": builder.base_image,
        "control-plane": builder.control_plane_image,
        "broker": builder.broker_image,
    }
    built: dict[str, dict[str, object]] = {}
    started = time.monotonic()
    try:
        for target in args.targets or TARGETS:
            image = steps[target]()
            built[target] = {"image": image, "size_bytes": store.size(image)}
    except (RootfsError, PodmanUnavailableError, wheels.WheelError) as error:
        print(f"flotta dev images: {error}", file=sys.stderr)
        return 1
    total = round(time.monotonic() - started, 1)
    for target, facts in built.items():
        size = facts["size_bytes"]
        assert isinstance(size, int)
        print(f"{target:14} {facts['image']}  {size / 1e6:.1f} MB")
    print(f"took {total} s ({', '.join(f'{k} {v} s' for k, v in builder.timings.items())})")
    if args.report is not None:
        report = {"images": built, "timings_s": builder.timings, "total_s": total}
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0

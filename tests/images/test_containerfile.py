"""deploy/container/Containerfile*: what the images are made of, read without building them
(tests/images/test_images.py checks the built images)."""

from __future__ import annotations

import json

import pytest

from flotta.dev.images.build import BROKER_IMAGE, CONTROL_PLANE_IMAGE, Builder, Provenance
from flotta.dev.images.podman_store import PodmanStore
from flotta.dev.images.rootfs import BASE, BROKER, PATH_EXCLUDES, RootfsSpec
from flotta.dev.images.wheels import control_plane_extras, platform_tags
from tests.deploy.manifests import ROOT, containers, kustomization

CONTAINER_DIR = ROOT / "deploy" / "container"


def stages(name: str) -> list[list[tuple[str, str]]]:
    """The Containerfile's instructions, stage by stage (continuation lines joined)."""
    text = (CONTAINER_DIR / name).read_text().replace("\\\n", " ")
    result: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        if keyword.upper() == "FROM" and result[-1] and any(k == "FROM" for k, _ in result[-1]):
            result.append([])
        result[-1].append((keyword.upper(), rest.strip()))
    return result


def final(name: str) -> list[tuple[str, str]]:
    return stages(name)[-1]


def test_control_plane_runs_flotta_as_a_numeric_non_root_user() -> None:
    last = final("Containerfile")
    uid = [rest for keyword, rest in last if keyword == "USER"][-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) == 10001
    entrypoint = next(rest for keyword, rest in last if keyword == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["flotta"]
    path = next(rest for keyword, rest in last if keyword == "ENV")
    assert "PATH=/opt/flotta/bin:" in path  # `python` for the CRL reloader's command


def test_broker_runs_mosquitto_as_the_manifests_user() -> None:
    last = final("Containerfile.broker")
    assert [rest for keyword, rest in last if keyword == "USER"] == ["1883:1883"]
    assert json.loads(next(rest for keyword, rest in last if keyword == "ENTRYPOINT")) == [
        "/usr/sbin/mosquitto"
    ]
    runs = " ".join(rest for keyword, rest in last if keyword == "RUN")
    assert "/mosquitto/data " in runs
    assert "/mosquitto/data-enrolment" in runs


def test_every_image_carries_the_oci_labels() -> None:
    """Static ones in the Containerfile, the build's own from ``podman build --label``."""
    for name in ("Containerfile", "Containerfile.broker"):
        labels = " ".join(rest for keyword, rest in final(name) if keyword == "LABEL")
        for key in ("title", "description", "licenses"):
            assert f"org.opencontainers.image.{key}=" in labels, (name, key)
        assert "${" not in labels  # the layer cache would keep an earlier build's values


def test_images_start_from_the_imported_debian_bases_only() -> None:
    for name, base in (
        ("Containerfile", "localhost/flotta/debian-base:bookworm"),
        ("Containerfile.broker", "localhost/flotta/broker-base:bookworm"),
    ):
        text = (CONTAINER_DIR / name).read_text()
        assert f"ARG BASE_IMAGE={base}\n" in text
        sources = {rest.split()[0] for stage in stages(name) for k, rest in stage if k == "FROM"}
        assert sources <= {"${BASE_IMAGE}", "scratch"}, sources


def test_control_plane_installs_no_agent_or_development_extras() -> None:
    extras = control_plane_extras()
    assert {"operator", "bridge"} <= set(extras)
    assert not {"agent", "dev"} & set(extras)


def test_wheels_are_picked_for_bookworms_glibc_not_only_the_newest_tag() -> None:
    tags = platform_tags("x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags
    assert not any("_2_37_" in tag for tag in tags)


def test_rootfs_is_essential_plus_named_packages_without_perl_via_usrmerge() -> None:
    for spec in (BASE, BROKER):
        argv = spec.argv(ROOT / "out.tar")
        assert "--variant=essential" in argv
        assert any(arg.endswith("/hooks/merged-usr") for arg in argv)
        assert "usrmerge" not in spec.packages
    assert "python3" in BASE.packages
    assert "mosquitto" in BROKER.packages
    assert "python3" not in BROKER.packages
    assert "path-include=/usr/share/doc/*/copyright" in PATH_EXCLUDES


def test_rootfs_key_changes_with_its_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    other = RootfsSpec(BASE.name, (*BASE.packages, "tzdata"))
    assert other.key() != BASE.key()
    before = BASE.key()
    monkeypatch.setenv("FLOTTA_DEBIAN_MIRROR", "http://127.0.0.1:3142/deb.debian.org/debian")
    assert BASE.key() != before
    assert BASE.sources()[0].startswith("deb http://127.0.0.1:3142/")
    monkeypatch.setenv("FLOTTA_DEBIAN_SECURITY_MIRROR", "none")
    assert not any("security" in line for line in BASE.sources())


def test_builds_run_without_network_or_pulls() -> None:
    """The build may not reach anything: the argv the builder runs says so."""
    seen: list[tuple[str, ...]] = []

    class Recording(PodmanStore):
        def podman(self, *args: str, timeout: float = 600) -> str:
            seen.append(args)
            return ""

        def size(self, image: str) -> int:
            return 0

    builder = Builder(store=Recording(), say=lambda _: None)
    builder._build("localhost/x", CONTAINER_DIR / "Containerfile", ROOT, "base:tag")
    (build,) = [args for args in seen if args[0] == "build"]
    assert "--network=none" in build
    assert "--pull=never" in build
    assert "--build-arg=BASE_IMAGE=base:tag" in build
    for key in ("version", "revision", "source"):
        assert any(arg.startswith(f"--label=org.opencontainers.image.{key}=") for arg in build)
    assert "--label=org.opencontainers.image.base.name=base:tag" in build


def test_manifests_run_the_image_the_kustomization_tags() -> None:
    tagged = {image["name"] for image in kustomization()["images"]}
    used = {c.spec["image"] for c in containers()}
    assert used == tagged
    assert "flotta-control-plane" in used


def test_the_kustomization_runs_the_images_make_images_builds() -> None:
    """Both images under the names and the tag (the project's version) the builder gives."""
    tags = {image["name"]: image["newTag"] for image in kustomization()["images"]}
    version = Provenance.of().version
    built = (CONTROL_PLANE_IMAGE, BROKER_IMAGE)
    assert tags == {name.removeprefix("localhost/"): version for name in built}


def test_refresh_makes_each_thing_again_once_per_run() -> None:
    builder = Builder(store=PodmanStore(), refresh=True, say=lambda _: None)
    assert builder._refresh("debian-base")
    assert not builder._refresh("debian-base")  # the control plane reuses the new base
    assert builder._refresh("wheels")
    assert not Builder(store=PodmanStore(), say=lambda _: None)._refresh("debian-base")

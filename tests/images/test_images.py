"""The built images (``make images``; built on first use into the tests' store, see
tests/fixtures/images.py): what they contain, who they run as, what their labels say."""

from __future__ import annotations

from flotta.dev.images import PodmanStore

MB = 1_000_000  # as `podman images` counts
# docs/images.md: the goal for the control plane is under 150 MB.
CONTROL_PLANE_LIMIT = 150 * MB


def run(store: PodmanStore, image: str, *command: str, entrypoint: str | None = None) -> str:
    args = ["run", "--rm", "--network=none"]
    if entrypoint is not None:
        args.append(f"--entrypoint={entrypoint}")
    return store.podman(*args, image, *command, timeout=120)


def test_debian_base_has_python_and_dpkg_but_no_apt(
    images_store: PodmanStore, base_image: str
) -> None:
    out = run(
        images_store,
        base_image,
        "sh",
        "-c",
        "python3 -c 'import ssl, sqlite3, venv; print(ssl.OPENSSL_VERSION)';"
        " dpkg-query -W -f='${Package}\\n' python3.11 ca-certificates dpkg;"
        " command -v apt-get || echo no-apt;"
        " [ -d /usr/share/perl ] || echo no-perl-modules;"
        " . /etc/os-release; echo $VERSION_CODENAME",
    )
    lines = out.split()
    assert "OpenSSL" in lines
    assert {"python3.11", "ca-certificates", "dpkg", "no-apt", "bookworm"} <= set(lines)
    assert "no-perl-modules" in lines  # usr-is-merged: usrmerge would bring all of Perl
    assert images_store.size(base_image) < 100 * MB

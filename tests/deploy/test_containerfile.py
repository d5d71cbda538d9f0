"""deploy/container/Containerfile: the control-plane image the manifests run (it cannot be
built here: no base image can be pulled; the install it does is the one tested below)."""

from __future__ import annotations

import json
import re

from tests.deploy.manifests import ROOT, containers, kustomization

CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_image_installs_the_operator_and_bridge_extras_and_runs_as_non_root() -> None:
    steps = instructions()
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) == 2, "a build stage and a runtime stage"
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "'/src[operator,bridge]'" in runs
    assert "[dev]" not in runs
    assert "[agent" not in runs
    final = steps[[k for k, _ in steps].index("FROM", 1) :]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the runtime stage sets a user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert int(uid) != 0
    entrypoint = next(rest for keyword, rest in final if keyword == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["flotta"]


def test_copied_sources_exist_and_cover_the_wheel() -> None:
    copied = set()
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                copied.add(source.rstrip("/"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("only-include = [", 1)[1].split("]", 1)[0]
    for package_dir in re.findall(r'"([^"]+)"', block):
        assert any(package_dir == c or package_dir.startswith(c + "/") for c in copied), package_dir
    assert "deploy/crds" in copied  # force-included into the wheel


def test_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".flotta", "tests", "benchmarks"):
        assert entry in ignored


def test_manifests_run_the_image_the_kustomization_tags() -> None:
    tagged = {image["name"] for image in kustomization()["images"]}
    used = {c.spec["image"] for c in containers()}
    assert used == tagged
    assert "flotta-control-plane" in used

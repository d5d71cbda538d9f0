"""Revisions of a workload and their ControllerRevision form: named by content, read back to
the same rendered bytes, and a retry attempt changes the bytes (and so the version)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from flotta.operator.rendering import RenderedWorkload, render_workload
from flotta.operator.rollout_revisions import (
    RETRY_ANNOTATION,
    RevisionError,
    controller_revision,
    from_controller_revision,
    revision_of,
)
from tests.operator.builders import workload


def rendered(image: str, selector: dict[str, Any] | None = None) -> RenderedWorkload:
    model, pod = workload(
        "web", selector=selector or {}, pod={"containers": [{"name": "m", "image": image}]}
    )
    result = render_workload(model, pod, secrets=lambda _n: None, configmaps=lambda _n: None)
    assert isinstance(result, RenderedWorkload)
    return result


def test_a_revision_is_named_by_its_content_only() -> None:
    one = revision_of(rendered("a:1"))
    assert one.name.startswith("web-")
    assert revision_of(rendered("a:1")).name == one.name
    assert revision_of(rendered("a:2")).name != one.name
    # where it runs is not part of it
    elsewhere = revision_of(rendered("a:1", selector={"matchLabels": {"x": "y"}}))
    assert elsewhere.name == one.name


def test_the_controller_revision_reads_back_to_the_same_bytes() -> None:
    current = rendered("a:1")
    revision = revision_of(current)
    body = controller_revision(revision, "uid-1")
    assert body["kind"] == "ControllerRevision"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    again = from_controller_revision(body)
    assert again.rendered(current.target).json == current.json
    assert again.rendered(current.target).canonical == current.canonical


def test_a_retry_attempt_renders_different_bytes() -> None:
    current = rendered("a:1")
    revision = revision_of(current)
    retried = from_controller_revision(controller_revision(replace(revision, attempt=2), ""))
    assert retried.attempt == 2
    bytes_again = retried.rendered(current.target)
    assert bytes_again.json != current.json
    assert bytes_again.workload.annotations[RETRY_ANNOTATION] == "2"


def test_foreign_or_broken_revisions_are_refused() -> None:
    with pytest.raises(RevisionError):
        from_controller_revision({"metadata": {"name": "x", "labels": {}}, "data": {}})
    body = controller_revision(revision_of(rendered("a:1")), "")
    body["data"] = {"workload": {"name": 3}}
    with pytest.raises(RevisionError):
        from_controller_revision(body)

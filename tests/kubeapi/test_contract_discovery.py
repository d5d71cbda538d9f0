"""Contract: discovery documents as clients request them (local API, or --real-cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubeapi.raw import request


@pytest.mark.parametrize("path", ["/version", "/api", "/apis"])
def test_discovery_roots_with_a_trailing_slash(kube: Any, path: str) -> None:
    status, plain = request(kube, "GET", path)
    assert status == 200
    slashed_status, slashed = request(kube, "GET", path + "/")
    assert (slashed_status, slashed) == (200, plain)
    if path == "/version":
        assert plain["major"] == "1"
    else:
        assert plain["kind"] == ("APIVersions" if path == "/api" else "APIGroupList")


def test_unknown_group_stays_not_found(kube: Any) -> None:
    status, body = request(kube, "GET", "/apis/nope.example.flotta.io/")
    assert status == 404
    assert body["reason"] == "NotFound"

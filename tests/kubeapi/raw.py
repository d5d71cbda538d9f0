"""Raw requests through the official client's transport (its TLS and credentials), for
paths and media types its generated API methods do not offer."""

from __future__ import annotations

import json
from typing import Any


def request(
    kube: Any,
    method: str,
    path: str,
    body: str | None = None,
    *,
    content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, Any]:
    """Send one request to ``kube``; returns the status code and the parsed JSON answer."""
    api_client = kube.api_client()
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, _, _ = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params=headers,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, header_params=headers, body=body)
    response.read()
    text = response.data.decode() if response.data else ""
    return response.status, json.loads(text) if text.strip() else None

"""A .dockerconfigjson as Podman's X-Registry-Config header. Pure."""

from __future__ import annotations

import base64
import json

import pytest

from flotta.agent.runtime import InvalidManifestError
from flotta.agent.runtime.registry_auth import registry_config_header


def decode(header: str) -> object:
    return json.loads(base64.urlsafe_b64decode(header))


def test_auth_entries_become_username_and_password() -> None:
    config = {
        "auths": {
            "registry.example.com": {"auth": base64.b64encode(b"robot:s3:cret").decode()},
            "quay.example.com": {"username": "u", "password": "p"},
            "token.example.com": {"identitytoken": "tok"},
        }
    }
    assert decode(registry_config_header("w", json.dumps(config))) == {
        "registry.example.com": {"username": "robot", "password": "s3:cret"},
        "quay.example.com": {"username": "u", "password": "p"},
        "token.example.com": {"identitytoken": "tok"},
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[]", 'no "auths"'),
        ('{"auths": {"r": 5}}', "not an object"),
        ('{"auths": {"r": {"auth": "!!!"}}}', "not base64"),
        (
            '{"auths": {"r": {"auth": "' + base64.b64encode(b"nocolon").decode() + '"}}}',
            "user:password",
        ),
        ('{"auths": {"r": {}}}', "neither auth"),
    ],
)
def test_malformed_auth_is_an_invalid_manifest(text: str, reason: str) -> None:
    with pytest.raises(InvalidManifestError, match=reason):
        registry_config_header("w", text)

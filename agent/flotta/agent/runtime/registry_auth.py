"""Image registry credentials: a ``.dockerconfigjson`` as Podman's ``X-Registry-Config``
header (base64url JSON, registry -> credentials), which Podman writes to a temporary auth
file for the pulls of one ``kube play``. Pure."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flotta.agent.runtime.errors import InvalidManifestError


def registry_config_header(workload: str, dockerconfigjson: str) -> str:
    """The header value for ``dockerconfigjson``; InvalidManifestError when it is malformed."""

    def fail(reason: str) -> InvalidManifestError:
        return InvalidManifestError(workload, f"image registry auth: {reason}")

    try:
        document = json.loads(dockerconfigjson)
    except ValueError as error:
        raise fail(f"not JSON ({error})") from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise fail('no "auths" object (expected a .dockerconfigjson)')
    credentials: dict[str, dict[str, str]] = {}
    for registry, entry in auths.items():
        if not isinstance(entry, dict):
            raise fail(f"the entry for {registry!r} is not an object")
        credentials[str(registry)] = _credentials(entry, fail)
    encoded = json.dumps(credentials, sort_keys=True).encode()
    return base64.urlsafe_b64encode(encoded).decode()


def _credentials(entry: dict[str, Any], fail: Any) -> dict[str, str]:
    if entry.get("identitytoken"):
        return {"identitytoken": str(entry["identitytoken"])}
    username, password = entry.get("username"), entry.get("password")
    if username is None and "auth" in entry:
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise fail('"auth" is not base64 of user:password') from None
        username, separator, password = decoded.partition(":")
        if not separator:
            raise fail('"auth" is not base64 of user:password')
    if not username:
        raise fail("an entry has neither auth, username/password nor identitytoken")
    return {"username": str(username), "password": str(password or "")}

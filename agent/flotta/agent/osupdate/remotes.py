"""The ostree remote the agent writes for a hosted OS repository: pure.

Signature checking stays on unless the agent's configuration turns it off
(``ostree_gpg_verify = false``): a commit pulled from the remote must be signed by a key
ostree trusts for it: the keys at ``ostree_gpg_keypath`` (a file or a folder of keys), keys
imported with ``ostree remote gpg-import flotta``, or the system-wide keyrings in
``/usr/share/ostree/trusted.gpg.d/``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flotta.agent.osupdate.errors import OsUpdateError

REMOTE_NAME = "flotta"
SCHEMES = ("http", "https", "file")


def remote_config(url: str, *, gpg_verify: bool, gpg_keypath: str = "") -> str:
    """The ``/etc/ostree/remotes.d/flotta.conf`` text for ``url``.

    The URL comes from the desired state: one that could break out of its line (and, say,
    add ``gpg-verify=false``) or is not a URL ostree fetches from is refused."""
    if not url or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise OsUpdateError(f"hosted objects URL {url!r} is empty or holds spaces or controls")
    if urlsplit(url).scheme not in SCHEMES:
        raise OsUpdateError(f"hosted objects URL {url!r} is not http://, https:// or file://")
    lines = [f'[remote "{REMOTE_NAME}"]', f"url={url}"]
    if gpg_verify:
        lines.append("gpg-verify=true")
        if gpg_keypath:
            lines.append(f"gpgkeypath={gpg_keypath}")
    else:
        lines.append("gpg-verify=false")
    return "\n".join(lines) + "\n"

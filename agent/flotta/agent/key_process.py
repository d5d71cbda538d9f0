"""Work with the device key in a short-lived child process (``python -m flotta.agent.key_process``).

The daemon runs for months on a small board; ``cryptography`` costs about 12 MiB resident once
loaded and is needed only now and then: to open the sealed secrets of a new desired state, and
for a certificate renewal every few days. Each such step runs in a child that reads one JSON
request on stdin and writes one JSON answer on stdout:

- ``{"op": "unseal", "key", "device_id", "items": [SealedData...]}`` -> ``{"results": [{"data"}
  or {"error"}...]}``
- ``{"op": "csr", "identity", "device_id"}`` -> ``{"csr"}``: a CSR for the existing device key
- ``{"op": "store", "identity", "device_id", "certificate", "ca"}`` -> ``{"status"}`` or
  ``{"error"}``: check an issued certificate against the key and store it
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from flotta.child_process import same_code_environment

CHILD_TIMEOUT = 60.0  # seconds; the interpreter start and the key work take well under 1 s


class KeyChildError(ValueError):
    """The child failed or answered something unreadable."""


async def run_child(request: dict[str, Any]) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flotta.agent.key_process",
        env=same_code_environment(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            child.communicate(json.dumps(request).encode()), CHILD_TIMEOUT
        )
    except TimeoutError:
        child.kill()
        await child.wait()
        raise KeyChildError(f"the key child ran over {CHILD_TIMEOUT:.0f} s") from None
    if child.returncode != 0:
        detail = err.decode(errors="replace")[-500:]
        raise KeyChildError(f"the key child failed ({child.returncode}): {detail}")
    try:
        answer = json.loads(out)
    except ValueError as exc:
        raise KeyChildError(f"the key child answered nonsense: {exc}") from None
    if not isinstance(answer, dict):
        raise KeyChildError("the key child answered nonsense")
    return answer


# ---- in the child ----------------------------------------------------------------------------


def _unseal(request: dict[str, Any]) -> dict[str, Any]:
    import msgspec

    from flotta.pki.errors import PkiError
    from flotta.pki.keys import load_private_key
    from flotta.pki.sealing import unseal
    from flotta.schemas.wire import SealedData

    try:
        key = load_private_key(Path(request["key"]).read_bytes())
    except (OSError, ValueError, PkiError) as exc:
        return {"results": [{"error": f"device key: {exc}"} for _ in request["items"]]}
    results: list[dict[str, str]] = []
    for raw in request["items"]:
        try:
            item = msgspec.convert(raw, SealedData)
            opened = unseal(key, item, device_id=request["device_id"])  # type: ignore[arg-type]
            results.append({"data": base64.b64encode(opened).decode()})
        except ValueError as exc:  # SealingError and validation errors are ValueErrors
            results.append({"error": str(exc)})
    return {"results": results}


def _identity(request: dict[str, Any]) -> Any:
    from flotta.agent.identity import IdentityStore

    return IdentityStore(Path(request["identity"]), request["device_id"])


def _csr(request: dict[str, Any]) -> dict[str, Any]:
    from flotta.agent.errors import AgentError

    try:
        return {"csr": _identity(request).csr_pem()}
    except AgentError as exc:
        return {"error": str(exc)}


def _store(request: dict[str, Any]) -> dict[str, Any]:
    from flotta.agent.errors import AgentError

    try:
        status = _identity(request).store_certificate(request["certificate"], request["ca"])
    except AgentError as exc:
        return {"error": str(exc)}
    return {
        "status": {
            "common_name": status.common_name,
            "not_before": status.not_before.isoformat(),
            "not_after": status.not_after.isoformat(),
            "serial": status.serial,
        }
    }


def parse_status(document: dict[str, Any]) -> tuple[str, datetime, datetime, int]:
    return (
        str(document["common_name"]),
        datetime.fromisoformat(document["not_before"]),
        datetime.fromisoformat(document["not_after"]),
        int(document["serial"]),
    )


OPERATIONS = {"unseal": _unseal, "csr": _csr, "store": _store}


def main() -> int:
    request = json.load(sys.stdin)
    operation = OPERATIONS.get(request.get("op"))
    if operation is None:
        print(f"unknown operation {request.get('op')!r}", file=sys.stderr)
        return 2
    json.dump(operation(request), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

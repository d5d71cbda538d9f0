"""Opening the sealed secrets of a desired state in a short-lived child process.

The daemon runs for months on a small board; ``cryptography`` costs about 12 MiB resident once
loaded and is needed only when a desired state with sealed data arrives. So the daemon hands
the sealed items to ``python -m flotta.agent.unsealing`` (one JSON document on stdin, one on
stdout) and keeps the opened bytes for that desired state only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from flotta.schemas.wire import DesiredState, SealedData

CHILD_TIMEOUT = 60.0  # seconds; the interpreter start and the key exchange take well under 1 s


class UnsealingError(ValueError):
    """A sealed item could not be opened (or the child that opens them failed)."""


def sealed_items(state: DesiredState) -> list[SealedData]:
    """Every sealed item of the state, each once: secrets and registry credentials."""
    items = [secret.data for secret in state.secrets]
    items += [w.image_registry_auth for w in state.workloads if w.image_registry_auth is not None]
    return list({_item_key(item): item for item in items}.values())


def _item_key(item: SealedData) -> str:
    return item.model_dump_json()


@dataclass(frozen=True)
class OpenedItems:
    """What the child opened: bytes or the reason it could not, per sealed item."""

    opened: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def __call__(self, item: SealedData) -> bytes:
        key = _item_key(item)
        if key in self.opened:
            return self.opened[key]
        raise UnsealingError(self.errors.get(key, "not opened"))


async def open_in_child(key_path: Path, device_id: str, items: list[SealedData]) -> OpenedItems:
    """Open ``items`` with the device key in a child process."""
    if not items:
        return OpenedItems()
    if not await asyncio.to_thread(key_path.exists):
        return OpenedItems(errors={_item_key(i): "no device key" for i in items})
    request = {
        "key": str(key_path),
        "device_id": device_id,
        "items": [item.model_dump(mode="json") for item in items],
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flotta.agent.unsealing",
        env=_same_code_environment(),
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
        raise UnsealingError(
            f"the unsealing child took longer than {CHILD_TIMEOUT:.0f} s"
        ) from None
    if child.returncode != 0:
        detail = err.decode(errors="replace")[-500:]
        raise UnsealingError(f"the unsealing child failed ({child.returncode}): {detail}")
    try:
        answers = json.loads(out)["results"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsealingError(f"the unsealing child answered nonsense: {exc}") from None
    result = OpenedItems()
    for item, answer in zip(items, answers, strict=True):
        if "data" in answer:
            result.opened[_item_key(item)] = base64.b64decode(answer["data"])
        else:
            result.errors[_item_key(item)] = str(answer.get("error", "unknown error"))
    return result


def _same_code_environment() -> dict[str, str]:
    """This environment, with the folders this process imports ``flotta`` from first on
    PYTHONPATH, so the child runs the same code whether or not the agent is installed."""
    import flotta

    portions = [str(Path(p).parent) for p in flotta.__path__]
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([*portions, *existing]))}


def _child_main() -> int:
    from flotta.pki.errors import PkiError
    from flotta.pki.keys import load_private_key
    from flotta.pki.sealing import unseal

    request = json.load(sys.stdin)
    results: list[dict[str, str]] = []
    try:
        key = load_private_key(Path(request["key"]).read_bytes())
    except (OSError, ValueError, PkiError) as exc:
        results = [{"error": f"device key: {exc}"} for _ in request["items"]]
    else:
        for raw in request["items"]:
            try:
                item = SealedData.model_validate(raw)
                opened = unseal(key, item, device_id=request["device_id"])  # type: ignore[arg-type]
                results.append({"data": base64.b64encode(opened).decode()})
            except ValueError as exc:  # SealingError and validation errors are ValueErrors
                results.append({"error": str(exc)})
    json.dump({"results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())

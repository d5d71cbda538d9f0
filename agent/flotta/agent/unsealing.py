"""Opening the sealed secrets of a desired state with the device key, in a child process
(:mod:`flotta.agent.key_process`), once per desired state."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from pathlib import Path

from flotta.agent.key_process import KeyChildError, run_child
from flotta.schemas.codec import encode_fragment, to_builtins
from flotta.schemas.wire import DesiredState, SealedData


class UnsealingError(ValueError):
    """A sealed item could not be opened (or the child that opens them failed)."""


def sealed_items(state: DesiredState) -> list[SealedData]:
    """Every sealed item of the state, each once: secrets and registry credentials."""
    items = [secret.data for secret in state.secrets]
    items += [w.image_registry_auth for w in state.workloads if w.image_registry_auth is not None]
    return list({_item_key(item): item for item in items}.values())


def _item_key(item: SealedData) -> str:
    return encode_fragment(item).decode()


@dataclass(frozen=True)
class OpenedItems:
    """What the child opened: bytes or the reason it could not, per sealed item."""

    opened: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def failed(cls, items: list[SealedData], reason: str) -> OpenedItems:
        return cls(errors={_item_key(item): reason for item in items})

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
        return OpenedItems.failed(items, "no device key")
    request = {
        "op": "unseal",
        "key": str(key_path),
        "device_id": device_id,
        "items": [to_builtins(item) for item in items],
    }
    try:
        answers = (await run_child(request))["results"]
    except (KeyChildError, KeyError) as exc:
        raise UnsealingError(f"sealed data not opened: {exc}") from None
    result = OpenedItems()
    for item, answer in zip(items, answers, strict=True):
        if "data" in answer:
            result.opened[_item_key(item)] = base64.b64decode(answer["data"])
        else:
            result.errors[_item_key(item)] = str(answer.get("error", "unknown error"))
    return result

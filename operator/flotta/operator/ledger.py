"""What was published to each device, and whether to publish again. Pure.

A device's desired state is published when its version differs from the last one the broker
acknowledged, when the device announces (in its birth message) an applied version that is not
the current one, and for every device after the operator reconnected to the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotta.operator.fleet_cache import Key


@dataclass(slots=True)
class Entry:
    version: str = ""  # the current desired version
    payload: bytes = b""
    published: str = ""  # the version the broker acknowledged last
    in_flight: str = ""  # the version being published
    heartbeat_period: int = 0  # seconds: the heartbeat period ``version`` tells the device
    revisions: tuple[str, ...] = ()  # rollout revisions ``version`` carries (owner=revision)


class Ledger:
    def __init__(self) -> None:
        self._entries: dict[Key, Entry] = {}

    def current(self, key: Key) -> Entry | None:
        return self._entries.get(key)

    def update(
        self,
        key: Key,
        version: str,
        payload: bytes,
        heartbeat_period: int,
        revisions: tuple[str, ...] = (),
    ) -> bool:
        """Record the current desired state; True when it has to be published."""
        entry = self._entries.setdefault(key, Entry())
        entry.version = version
        entry.payload = payload
        entry.heartbeat_period = heartbeat_period
        entry.revisions = revisions
        return version not in (entry.published, entry.in_flight)

    def start(self, key: Key) -> tuple[str, bytes] | None:
        """Take the state to publish now, or None when there is nothing new."""
        entry = self._entries.get(key)
        if entry is None or entry.version in (entry.published, entry.in_flight):
            return None
        entry.in_flight = entry.version
        return entry.version, entry.payload

    def acknowledged(self, key: Key, version: str) -> bool:
        """The broker acknowledged ``version``; True when a newer one is waiting."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        entry.published = version
        if entry.in_flight == version:
            entry.in_flight = ""
        return entry.version != version

    def failed(self, key: Key, version: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.in_flight == version:
            entry.in_flight = ""

    def announced(self, key: Key, applied: str) -> bool:
        """The device came online with ``applied``; True when it must get the current state
        again (its retained copy may be lost)."""
        entry = self._entries.get(key)
        if entry is None or not entry.version or applied == entry.version:
            return False
        entry.published = ""
        return entry.in_flight != entry.version

    def forget_published(self) -> list[Key]:
        """After a reconnect to the broker: nothing counts as published; every known device."""
        for entry in self._entries.values():
            entry.published = ""
            entry.in_flight = ""
        return list(self._entries)

    def unpublished(self) -> list[Key]:
        """Devices whose current state the broker has not acknowledged (none in flight is left
        after a lost connection: each got ``failed``)."""
        return [key for key, entry in self._entries.items() if entry.published != entry.version]

    def told(self, key: Key) -> dict[str, str]:
        """The rollout revisions the current desired state carries, by owner."""
        entry = self._entries.get(key)
        if entry is None:
            return {}
        return dict(item.split("=", 1) for item in entry.revisions)

    def remove(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

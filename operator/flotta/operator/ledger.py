"""What was published to each device, and whether to publish again. Pure.

A device's desired state is published when its version (or its retry token, which is not part
of the version) differs from the last one the broker acknowledged, when the device announces
(in its birth message) an applied version that is not the current one, and for every device
after the operator reconnected to the broker. What is published is named by a *mark*: the
version, with the retry token when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotta.operator.fleet_cache import Key


@dataclass(slots=True)
class Entry:
    version: str = ""  # the current desired version
    payload: bytes = b""
    published: str = ""  # the mark the broker acknowledged last
    in_flight: str = ""  # the mark being published
    heartbeat_period: int = 0  # seconds: the heartbeat period ``version`` tells the device
    revisions: tuple[str, ...] = ()  # rollout revisions ``version`` carries (owner=revision)
    retry: int = 0  # the payload's retry token

    @property
    def mark(self) -> str:
        """What names the current payload: its version, and its retry token if any."""
        return f"{self.version}+retry.{self.retry}" if self.retry else self.version


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
        retry: int = 0,
    ) -> bool:
        """Record the current desired state; True when it has to be published."""
        entry = self._entries.setdefault(key, Entry())
        entry.version = version
        entry.payload = payload
        entry.heartbeat_period = heartbeat_period
        entry.revisions = revisions
        entry.retry = retry
        return entry.mark not in (entry.published, entry.in_flight)

    def start(self, key: Key) -> tuple[str, bytes] | None:
        """Take the state to publish now (its mark and payload), or None when there is nothing
        new."""
        entry = self._entries.get(key)
        if entry is None or entry.mark in (entry.published, entry.in_flight):
            return None
        entry.in_flight = entry.mark
        return entry.mark, entry.payload

    def acknowledged(self, key: Key, mark: str) -> bool:
        """The broker acknowledged ``mark``; True when a newer one is waiting."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        entry.published = mark
        if entry.in_flight == mark:
            entry.in_flight = ""
        return entry.mark != mark

    def failed(self, key: Key, mark: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.in_flight == mark:
            entry.in_flight = ""

    def announced(self, key: Key, applied: str) -> bool:
        """The device came online with ``applied``; True when it must get the current state
        again (its retained copy may be lost)."""
        entry = self._entries.get(key)
        if entry is None or not entry.version or applied == entry.version:
            return False
        entry.published = ""
        return entry.in_flight != entry.mark

    def forget_published(self) -> list[Key]:
        """After a reconnect to the broker: nothing counts as published; every known device."""
        for entry in self._entries.values():
            entry.published = ""
            entry.in_flight = ""
        return list(self._entries)

    def unpublished(self) -> list[Key]:
        """Devices whose current state the broker has not acknowledged (none in flight is left
        after a lost connection: each got ``failed``)."""
        return [key for key, entry in self._entries.items() if entry.published != entry.mark]

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

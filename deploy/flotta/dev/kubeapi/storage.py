"""SQLite storage (WAL) with an in-memory copy of every object's serialized form.

One row per object; one cluster-wide resourceVersion counter, bumped by every write,
committed in the same transaction as the write so it survives a restart and stays monotonic.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    collection TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (collection, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('resourceVersion', 1);
"""


@dataclass(frozen=True)
class Entry:
    """A stored object: its JSON text and the fields lists filter on without parsing."""

    raw: str
    labels: dict[str, str]
    resource_version: int
    owners: tuple[str, ...] = ()

    def load(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value

    @classmethod
    def unstored(cls, obj: dict[str, Any]) -> Entry:
        """An entry for an object that is answered but not stored (a dry run)."""
        version = int(obj["metadata"].get("resourceVersion") or 0)
        return cls(json.dumps(obj, separators=(",", ":")), _labels(obj), version, _owners(obj))


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _owners(obj: dict[str, Any]) -> tuple[str, ...]:
    references = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return tuple(str(r["uid"]) for r in references if isinstance(r, dict) and r.get("uid"))


Key = tuple[str, str, str]  # collection, namespace, name


class Storage:
    """Objects keyed by (collection, namespace, name); cluster-scoped objects use ""."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Secrets live in here: readable by the owner alone, and so are the WAL files, which
        # SQLite creates with the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='resourceVersion'").fetchone()
        self.resource_version: int = int(row[0])
        self._cache: dict[str, dict[tuple[str, str], Entry]] = {}
        self._dependents: dict[str, set[Key]] = {}
        for collection, namespace, name, data in self._db.execute(
            "SELECT collection, namespace, name, data FROM objects"
        ):
            obj = json.loads(data)
            rv = int((obj.get("metadata") or {}).get("resourceVersion") or 0)
            self._remember(collection, namespace, name, Entry(data, _labels(obj), rv, _owners(obj)))

    def _remember(self, collection: str, namespace: str, name: str, entry: Entry | None) -> None:
        """Update the cache and the owner index for one object (None: it is gone)."""
        entries = self._cache.setdefault(collection, {})
        old = entries.pop((namespace, name), None)
        key = (collection, namespace, name)
        for uid in old.owners if old is not None else ():
            self._dependents.get(uid, set()).discard(key)
            if not self._dependents.get(uid):
                self._dependents.pop(uid, None)
        if entry is None:
            return
        entries[(namespace, name)] = entry
        for uid in entry.owners:
            self._dependents.setdefault(uid, set()).add(key)

    def dependents(self, uid: str) -> list[Key]:
        """Objects whose ownerReferences name ``uid``."""
        return sorted(self._dependents.get(uid, ()))

    def close(self) -> None:
        self._db.close()

    def next_version(self) -> int:
        """The resourceVersion the next write will get."""
        return self.resource_version + 1

    def get(self, collection: str, namespace: str, name: str) -> Entry | None:
        return self._cache.get(collection, {}).get((namespace, name))

    def put(self, collection: str, namespace: str, name: str, obj: dict[str, Any]) -> Entry:
        """Store ``obj`` under a new resourceVersion (written into its metadata)."""
        version = self.resource_version + 1
        obj["metadata"]["resourceVersion"] = str(version)
        raw = json.dumps(obj, separators=(",", ":"))
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO objects (collection, namespace, name, data)"
                " VALUES (?,?,?,?)",
                (collection, namespace, name, raw),
            )
            self._db.execute("UPDATE meta SET value=? WHERE key='resourceVersion'", (version,))
        self.resource_version = version
        entry = Entry(raw, _labels(obj), version, _owners(obj))
        self._remember(collection, namespace, name, entry)
        return entry

    def delete(self, collection: str, namespace: str, name: str, obj: dict[str, Any]) -> Entry:
        """Remove the object; the returned entry is its last state at the deletion's version."""
        version = self.resource_version + 1
        obj["metadata"]["resourceVersion"] = str(version)
        raw = json.dumps(obj, separators=(",", ":"))
        with self._transaction():
            self._db.execute(
                "DELETE FROM objects WHERE collection=? AND namespace=? AND name=?",
                (collection, namespace, name),
            )
            self._db.execute("UPDATE meta SET value=? WHERE key='resourceVersion'", (version,))
        self.resource_version = version
        self._remember(collection, namespace, name, None)
        return Entry(raw, _labels(obj), version, _owners(obj))

    def items(
        self, collection: str, namespace: str | None = None
    ) -> list[tuple[tuple[str, str], Entry]]:
        """Entries of a collection (optionally one namespace), sorted by namespace and name."""
        entries = self._cache.get(collection, {})
        if namespace is None:
            return sorted(entries.items())
        return sorted(item for item in entries.items() if item[0][0] == namespace)

    def count(self, collection: str) -> int:
        return len(self._cache.get(collection, {}))

    def namespaced_in(self, namespace: str) -> list[tuple[str, str]]:
        """(collection, name) of every object in ``namespace``."""
        return [
            (collection, name)
            for collection, entries in self._cache.items()
            for entry_namespace, name in entries
            if entry_namespace == namespace
        ]

    def collections(self) -> list[str]:
        return list(self._cache)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")

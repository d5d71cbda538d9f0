"""The agent's SQLite stores: a transaction leaves the connection usable whatever fails."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotta.agent.sqlite_file import open_store, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS child (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
);
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_store(tmp_path / "store" / "s.sqlite3", schema=SCHEMA, what="test store")
    connection.execute("PRAGMA foreign_keys=ON")
    yield connection
    connection.close()


def test_an_error_in_the_body_rolls_back_and_says_so(db: sqlite3.Connection) -> None:
    rollbacks: list[str] = []

    def insert_then_fail() -> None:
        with transaction(db, on_rollback=lambda: rollbacks.append("x")) as tx:
            tx.execute("INSERT INTO parent VALUES (1)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        insert_then_fail()
    assert rollbacks == ["x"]
    assert not db.in_transaction
    assert db.execute("SELECT COUNT(*) FROM parent").fetchone() == (0,)


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_works(
    db: sqlite3.Connection,
) -> None:
    rollbacks: list[str] = []
    # a deferred foreign key is only checked by COMMIT
    with (
        pytest.raises(sqlite3.IntegrityError),
        transaction(db, on_rollback=lambda: rollbacks.append("x")) as tx,
    ):
        tx.execute("INSERT INTO child VALUES (1, 99)")
    assert rollbacks == ["x"]
    assert not db.in_transaction
    with transaction(db) as tx:
        tx.execute("INSERT INTO parent VALUES (99)")
        tx.execute("INSERT INTO child VALUES (1, 99)")
    assert db.execute("SELECT COUNT(*) FROM child").fetchone() == (1,)

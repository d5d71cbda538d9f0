"""The agent's event journal: what the event queue keeps survives a restart of the agent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flotta.agent.event_journal import EventJournal, EventJournalError, SavedEvents
from flotta.agent.events import EventQueue, new_event


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "events" / "journal.sqlite3"


def _resumed(
    path: Path, capacity: int = 8, *, receipts: bool = True, busy_timeout: float = 5.0
) -> tuple[EventQueue, EventJournal]:
    journal = EventJournal(path, busy_timeout=busy_timeout)
    saved = journal.load()
    queue = EventQueue(capacity, receipts=receipts)
    queue.resume(saved.stream, saved.next_sequence, saved.events, journal)
    return queue, journal


def _saved(path: Path) -> SavedEvents:
    """What a journal holds, read by a journal of its own."""
    journal = EventJournal(path)
    try:
        return journal.load()
    finally:
        journal.close()


def _send_all(queue: EventQueue, now: float) -> list[int]:
    keys = []
    while (due := queue.next_to_send(now)) is not None:
        keys.append(due[0])
        queue.sent(due[0], now)
    return keys


def test_unconfirmed_events_come_back_with_their_stream_and_numbers(path: Path) -> None:
    queue, journal = _resumed(path)
    for reason in ("One", "Two", "Three"):
        queue.put(new_event(reason, "x"))
    assert _send_all(queue, 0.0) == [0, 1, 2]
    assert queue.confirm(queue.stream, [1]) == 1
    stream = queue.stream
    journal.close()

    again, journal = _resumed(path)
    try:
        assert again.stream == stream
        assert again.unconfirmed == 0  # not sent in this run: due at once
        resent = []
        while (due := again.next_to_send(0.0)) is not None:
            resent.append((due[0], due[1].reason, due[1].stream, due[1].sequence))
            again.sent(due[0], 0.0)
        assert resent == [(0, "One", stream, 0), (2, "Three", stream, 2)]
        again.put(new_event("Four", "x"))
        due = again.next_to_send(0.0)
        assert due is not None
        assert (due[0], due[1].sequence) == (3, 3)
    finally:
        journal.close()


def test_a_new_journal_makes_a_stream_and_keeps_it(path: Path) -> None:
    first = EventJournal(path)
    stream = first.load().stream
    first.close()
    second = EventJournal(path)
    try:
        saved = second.load()
        assert (saved.stream, saved.next_sequence, saved.events) == (stream, 0, [])
        assert len(stream) == 16
    finally:
        second.close()


def test_numbering_goes_on_after_every_event_was_confirmed(path: Path) -> None:
    queue, journal = _resumed(path)
    queue.put(new_event("One", "x"))
    queue.put(new_event("Two", "x"))
    _send_all(queue, 0.0)
    queue.confirm(queue.stream, [0, 1])
    journal.close()
    again, journal = _resumed(path)
    try:
        again.put(new_event("Three", "x"))
        due = again.next_to_send(0.0)
        assert due is not None
        assert due[1].sequence == 2
    finally:
        journal.close()


def test_events_dropped_for_room_or_sent_without_receipts_leave_the_journal(path: Path) -> None:
    queue, journal = _resumed(path, capacity=2)
    for reason in ("One", "Two", "Three"):
        queue.put(new_event(reason, "x"))
    assert queue.dropped == 1
    journal.close()
    assert [e.reason for _, e in _saved(path).events] == ["Two", "Three"]

    unconfirmed, journal = _resumed(path, receipts=False)
    _send_all(unconfirmed, 0.0)
    journal.close()
    assert _saved(path).events == []


def test_more_saved_events_than_room_keeps_the_newest(path: Path) -> None:
    queue, journal = _resumed(path, capacity=4)
    for n in range(4):
        queue.put(new_event(f"E{n}", "x"))
    journal.close()
    smaller, journal = _resumed(path, capacity=2)
    journal.close()
    assert (len(smaller), smaller.dropped) == (2, 2)
    assert [e.reason for _, e in _saved(path).events] == ["E2", "E3"]


def test_events_put_before_the_journal_opened_are_kept_after_the_saved_ones(path: Path) -> None:
    queue, journal = _resumed(path)
    queue.put(new_event("Saved", "x"))
    journal.close()
    early = EventQueue(8)
    early.put(new_event("Early", "x"))
    journal = EventJournal(path)
    saved = journal.load()
    early.resume(saved.stream, saved.next_sequence, saved.events, journal)
    journal.close()
    assert [(k, e.reason, e.stream) for k, e in _saved(path).events] == [
        (0, "Saved", saved.stream),
        (1, "Early", saved.stream),
    ]


def test_an_unreadable_row_is_removed_and_counted(path: Path) -> None:
    queue, journal = _resumed(path)
    queue.put(new_event("Good", "x"))
    journal.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO events VALUES (7, ?)", (b"\xff not an event",))
    db.close()
    journal = EventJournal(path)
    try:
        saved = journal.load()
        assert ([e.reason for _, e in saved.events], saved.unreadable) == (["Good"], 1)
        assert journal.load().unreadable == 0  # gone
        assert saved.next_sequence == 1
    finally:
        journal.close()


def test_a_corrupt_file_is_moved_aside_and_a_new_journal_starts(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    journal = EventJournal(path)
    try:
        assert journal.load().events == []
        assert [p.name.startswith("journal.sqlite3.corrupt-") for p in path.parent.iterdir()].count(
            True
        ) == 1
    finally:
        journal.close()


def test_a_journal_that_cannot_be_opened_says_which_file(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(EventJournalError, match=r"event journal .*state/journal\.sqlite3"):
        EventJournal(blocker / "journal.sqlite3")


def test_a_failed_write_is_counted_and_the_queue_goes_on_in_memory(path: Path) -> None:
    queue, journal = _resumed(path, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        queue.put(new_event("One", "x"))
        assert (journal.write_errors, len(queue)) == (1, 1)
        holder.execute("ROLLBACK")
        queue.put(new_event("Two", "x"))
        assert journal.write_errors == 1
    finally:
        holder.close()
        journal.close()
    assert [e.reason for _, e in _saved(path).events] == ["Two"]

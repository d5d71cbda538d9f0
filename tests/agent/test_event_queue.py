"""The agent's event queue: numbered events kept until the bridge's receipt names them."""

from __future__ import annotations

from flotta.agent.events import EventQueue, new_event
from flotta.schemas.wire import DeviceEvent


def _send_all(queue: EventQueue, now: float) -> list[DeviceEvent]:
    sent = []
    while (due := queue.next_to_send(now)) is not None:
        key, event = due
        queue.sent(key, now)
        sent.append(event)
    return sent


def test_events_are_numbered_in_the_queue_stream() -> None:
    queue = EventQueue(8, stream="run-1")
    for reason in ("One", "Two"):
        queue.put(new_event(reason, "x"))
    sent = _send_all(queue, 0.0)
    assert [(e.reason, e.stream, e.sequence) for e in sent] == [
        ("One", "run-1", 0),
        ("Two", "run-1", 1),
    ]


def test_an_event_is_kept_until_its_receipt() -> None:
    queue = EventQueue(8, stream="run-1", resend_after=30.0)
    queue.put(new_event("One", "x"))
    queue.put(new_event("Two", "x"))
    _send_all(queue, 0.0)
    assert (len(queue), queue.unconfirmed) == (2, 2)
    assert queue.confirm("run-1", [0]) == 1
    assert (len(queue), queue.unconfirmed) == (1, 1)
    assert queue.confirm("run-1", [0]) == 0  # a duplicate receipt changes nothing
    assert queue.confirm("run-0", [1]) == 0  # a receipt for an earlier run of the agent
    assert queue.confirm("run-1", [1]) == 1
    assert len(queue) == 0


def test_an_event_without_a_receipt_is_sent_again_after_the_period() -> None:
    queue = EventQueue(8, stream="run-1", resend_after=30.0)
    queue.put(new_event("One", "x"))
    [first] = _send_all(queue, 100.0)
    assert queue.next_to_send(129.0) is None
    assert queue.next_due(129.0) == 1.0
    due = queue.next_to_send(130.0)
    assert due is not None
    key, again = due
    assert again is first  # byte-identical: JetStream drops the copy by its message id
    queue.sent(key, 130.0)
    assert queue.resent == 1
    assert queue.next_due(130.0) == 30.0


def test_a_reconnect_restarts_the_resend_clocks() -> None:
    queue = EventQueue(8, stream="run-1", resend_after=30.0)
    queue.put(new_event("One", "x"))
    _send_all(queue, 0.0)
    queue.restart_resend_clocks(25.0)  # receipts for it may be queued in the session
    assert queue.next_to_send(30.0) is None
    assert queue.next_to_send(55.0) is not None


def test_no_more_than_the_window_waits_for_receipts() -> None:
    queue = EventQueue(8, stream="run-1", window=2)
    for reason in ("One", "Two", "Three"):
        queue.put(new_event(reason, "x"))
    assert [e.reason for e in _send_all(queue, 0.0)] == ["One", "Two"]
    queue.confirm("run-1", [0])
    assert [e.reason for e in _send_all(queue, 0.0)] == ["Three"]


def test_when_full_the_oldest_are_dropped_and_counted_sent_or_not() -> None:
    queue = EventQueue(2, stream="run-1")
    queue.put(new_event("One", "x"))
    _send_all(queue, 0.0)
    queue.put(new_event("Two", "x"))
    queue.put(new_event("Three", "x"))
    assert queue.dropped == 1
    assert queue.confirm("run-1", [0]) == 0  # dropped while it waited for its receipt
    assert [e.reason for e in _send_all(queue, 0.0)] == ["Two", "Three"]


def test_without_receipts_an_event_is_forgotten_once_sent_and_carries_no_number() -> None:
    queue = EventQueue(8, receipts=False)
    queue.put(new_event("One", "x"))
    [sent] = _send_all(queue, 0.0)
    assert (sent.stream, sent.sequence) == (None, None)
    assert len(queue) == 0
    assert queue.next_due(0.0) is None

"""What a rollout sees of each device, without any server: the book of assembled versions,
progress from the EdgeDevice status and the report heard, views made again only when their
inputs changed, and the batch watch that says which reports may move a rollout."""

from __future__ import annotations

from datetime import UTC, datetime

from flotta.operator.rollout_plan import DeviceView
from flotta.operator.rollout_views import (
    BOOK_SIZE,
    BatchWatch,
    Target,
    Views,
    booked,
    booked_oldest,
    progress,
)
from flotta.operator.version_reports import HeardVersions
from flotta.schemas.wire.status import VersionFailure
from tests.operator.builders import device

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
WANTED = "EdgeWorkload/web=web-2"
TARGET = Target(WANTED, "web")


def test_the_book_keeps_the_newest_versions_and_is_replaced_when_it_changes() -> None:
    book = booked(None, "v1", frozenset({WANTED}))
    assert book == {"v1": frozenset({WANTED})}
    assert booked(book, "v1", frozenset({WANTED})) is None  # unchanged: the same book
    for i in range(2, 2 + BOOK_SIZE):
        changed = booked(book, f"v{i}", frozenset())
        assert changed is not None
        assert changed is not book
        book = changed
    assert list(book) == [f"v{i}" for i in range(2, 2 + BOOK_SIZE)]  # v1 forgotten
    older = booked_oldest(book, "v0", frozenset({WANTED}))
    assert older is not None
    assert next(iter(older)) == "v0"
    assert booked_oldest(older, "v0", frozenset()) is None


def test_progress_reads_the_status_and_the_report_whichever_says_more() -> None:
    book = {"v1": frozenset(), "v2": frozenset({WANTED})}
    online = device("d0", status={"phase": "Online", "appliedVersion": "v1"})
    assert progress(TARGET, online, None, book) == ("updating", None)
    heard = HeardVersions(T0, applied="v2")
    assert progress(TARGET, online, heard, book) == ("updated", None)
    other = VersionFailure(version="v2", reason="container-exited", workload="other", time=T0)
    assert progress(TARGET, online, HeardVersions(T0, failed=other), book)[0] == "updating"
    mine = VersionFailure(version="v2", reason="container-exited", workload="web", time=T0)
    state, failure = progress(TARGET, online, HeardVersions(T0, failed=mine), book)
    assert state == "failed"
    assert failure is not None
    assert failure.reason == "container-exited"
    assert progress(TARGET, online, HeardVersions(T0, waiting="v2"), book)[0] == "waiting"


def test_a_view_is_made_again_only_when_one_of_its_inputs_changed() -> None:
    views = Views(TARGET, "fleet")
    devices = {("fleet", "d0"): device("d0", status={"phase": "Online"})}
    heard: dict[str, HeardVersions] = {}
    books = {("fleet", "d0"): {"v2": frozenset({WANTED})}}

    def look(admitted: dict[str, datetime]) -> DeviceView:
        (view,) = views.views(
            ["d0"],
            devices=devices,
            heard=heard.get,
            books=books,
            admitted=admitted,
            joined=set(),
            admitted_by_default=None,
        )
        return view

    first = look({"d0": T0})
    assert look({"d0": T0}) is first
    heard["d0"] = HeardVersions(T0, applied="v2")
    updated = look({"d0": T0})
    assert updated is not first
    assert updated.progress == "updated"
    assert look({}) is not updated  # not admitted: no progress
    assert look({}).progress == "none"


def test_the_watch_asks_for_an_evaluation_only_when_the_batch_may_move() -> None:
    watch = BatchWatch(
        size=4, needed=3, watched=frozenset({"a", "b", "c", "d"}), updated=set(), failed=set()
    )
    assert not watch.saw("a", "updated")
    assert not watch.saw("b", "updated")
    assert not watch.saw("b", "updated")  # again: still 2 of 3
    assert watch.saw("c", "updated")  # the threshold
    halting = BatchWatch(
        size=4, needed=3, watched=frozenset({"a", "b"}), updated=set(), failed=set()
    )
    assert not halting.saw("a", "failed")
    assert halting.saw("b", "failed")  # 3 of 4 can no longer be reached
    paused = BatchWatch(
        size=2, needed=1, watched=frozenset({"a"}), updated=set(), failed=set(), halt_only=True
    )
    assert not paused.saw("a", "updated")  # a paused rollout moves only to halt
    budget = BatchWatch(
        size=4, needed=4, watched=frozenset({"a"}), updated=set(), failed=set(), budget=True
    )
    assert budget.saw("a", "updated")  # done: room for the next one
    assert not budget.saw("a", "updated")

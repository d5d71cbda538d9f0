"""What a rollout sees of each device: how it does with the target revision, from its reports
and the versions the operator assembled for it. Pure (no I/O).

The *book* remembers, per device, the last few versions the operator assembled and the
revisions each carries (``owner=revision`` tags): a report names a version, the book says
which revisions it carries. A device's book is replaced, never changed in place, so that its
identity says whether it changed.

A device's progress comes from its EdgeDevice status (the bridge's writes, the authority after
a restart) and from the status report heard last (while rollouts are under way), whichever
says more: updated when either reports a version carrying the target applied, failed when
either reports such a version failed (for this workload, or for none in particular, and not
before the rollout's latest retry reached the device), waiting when either waits for its
update window with one, else updating.

:class:`Views` keeps each device's :class:`~flotta.operator.rollout_plan.DeviceView` as long
as nothing it is made of changed (the EdgeDevice object, the report heard, the book, when the
device got the revision), so a rollout over 10,000 devices is evaluated again without
looking at each device's reports again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from flotta.operator.fleet_cache import Key
from flotta.operator.rollout_plan import DeviceView, Failure, Progress
from flotta.operator.version_reports import HeardVersions
from flotta.schemas.crd.device import EdgeDevice, FailedVersion
from flotta.schemas.wire.status import VersionFailure

BOOK_SIZE = 4  # assembled versions remembered per device
Tag = str  # "EdgeWorkload/<name>=<revision name>"
Book = dict[str, frozenset[Tag]]  # version -> the revisions it carries, oldest first


def tag(owner: str, revision: str) -> Tag:
    return f"{owner}={revision}"


def booked(book: Book | None, version: str, tags: frozenset[Tag]) -> Book | None:
    """The book with ``version`` as the newest entry; None: unchanged."""
    if book is not None and book.get(version) == tags and next(reversed(book)) == version:
        return None
    entries = {v: t for v, t in (book or {}).items() if v != version}
    entries[version] = tags
    while len(entries) > BOOK_SIZE:
        del entries[next(iter(entries))]
    return entries


def booked_oldest(book: Book | None, version: str, tags: frozenset[Tag]) -> Book | None:
    """The book with ``version`` as the oldest entry, unless it has it; None: unchanged."""
    if book is not None and version in book:
        return None
    return {version: tags, **(book or {})}


@dataclass(frozen=True, slots=True)
class Target:
    """The revision a rollout rolls out, as the views need it."""

    wanted: Tag  # the tag of a version that carries it
    workload: str  # the workload's name; "" for a set (any failure counts)


def progress(
    target: Target,
    device: EdgeDevice | None,
    heard: HeardVersions | None,
    book: Book | None,
    retry: int = 0,
) -> tuple[Progress, Failure | None]:
    """How the device does with the target revision, from its EdgeDevice status and the
    status report heard last, whichever says more. ``retry``: the rollout's latest retry
    token (a failure reported under an older one is past)."""
    status = device.status if device is not None else None
    if status is None and heard is None:
        return "updating", None
    entries = book or {}
    wanted = target.wanted

    def carries(version: str) -> bool:
        tags = entries.get(version) if version else None
        return tags is not None and wanted in tags

    if (status is not None and carries(status.applied_version)) or (
        heard is not None and carries(heard.applied)
    ):
        return "updated", None
    failure = failure_of(target, status.failed_version if status else None, carries, retry)
    if failure is None and heard is not None and heard.failed is not None:
        failure = failure_of(target, heard.failed, carries, retry)
    if failure is not None:
        return "failed", failure
    if (status is not None and carries(status.waiting_version)) or (
        heard is not None and carries(heard.waiting)
    ):
        return "waiting", None
    return "updating", None


def failure_of(
    target: Target,
    failed: FailedVersion | VersionFailure | None,
    carries: Callable[[str], bool],
    retry: int = 0,
) -> Failure | None:
    # A set's rollout owns any failure of a version that carries it; a workload's only the
    # failures of that workload or of no workload in particular.
    if (
        failed is None
        or not carries(failed.version)
        or (target.workload and failed.workload not in ("", target.workload))
        or failed.retry < retry  # before the latest retry reached the device
    ):
        return None
    return Failure(
        failed.reason,
        workload=failed.workload,
        container=failed.container,
        exit_code=failed.exit_code,
        message=failed.message,
        rolled_back=failed.rolled_back,
        time=failed.time,
    )


@dataclass(frozen=True, slots=True)
class _Seen:
    device: EdgeDevice | None
    heard: HeardVersions | None
    book: Book | None
    view: DeviceView


class Views:
    """The DeviceViews of one rollout's devices, each made again only when one of its inputs
    changed (or the rollout was retried)."""

    def __init__(self, target: Target, namespace: str) -> None:
        self.target = target
        self._namespace = namespace
        self._seen: dict[str, _Seen] = {}
        self._retry = 0

    def views(
        self,
        names: Iterable[str],
        *,
        devices: Mapping[Key, EdgeDevice],
        heard: Callable[[str], HeardVersions | None],
        books: Mapping[Key, Book],
        admitted: Mapping[str, datetime],
        joined: set[str],
        admitted_by_default: datetime | None,
        retry: int = 0,
    ) -> list[DeviceView]:
        """The views of ``names`` in that order. ``admitted_by_default``: when a device that
        is not in ``admitted`` got the revision (a complete rollout's start), or None;
        ``retry``: the rollout's latest retry token."""
        if retry != self._retry:
            self._seen.clear()
            self._retry = retry
        namespace = self._namespace
        seen = self._seen
        out = []
        for name in names:
            key = (namespace, name)
            device = devices.get(key)
            report = heard(name)
            book = books.get(key)
            admitted_at = admitted.get(name, admitted_by_default)
            is_joined = name in joined
            known = seen.get(name)
            if (
                known is not None
                and known.device is device
                and known.heard is report
                and known.book is book
                and known.view.admitted_at == admitted_at
                and known.view.joined == is_joined
            ):
                out.append(known.view)
                continue
            view = self._view(name, device, report, book, admitted_at, is_joined)
            seen[name] = _Seen(device, report, book, view)
            out.append(view)
        if len(seen) > len(out):
            wanted = {view.name for view in out}
            self._seen = {name: known for name, known in seen.items() if name in wanted}
        return out

    def _view(
        self,
        name: str,
        device: EdgeDevice | None,
        heard: HeardVersions | None,
        book: Book | None,
        admitted_at: datetime | None,
        joined: bool,
    ) -> DeviceView:
        labels = device.metadata.labels if device is not None else {}
        online = bool(device and device.status and device.status.phase == "Online")
        state: Progress = "none"  # until it gets the revision, nothing it reports counts
        failure = None
        if admitted_at is not None:
            state, failure = progress(self.target, device, heard, book, self._retry)
        return DeviceView(
            name,
            labels,
            online=online,
            joined=joined,
            admitted_at=admitted_at,
            progress=state,
            failure=failure,
        )


@dataclass
class BatchWatch:
    """What of the current batch the last evaluation saw, kept up to date report by report,
    so that a report only brings an evaluation about when it may move the rollout: the batch
    reaches its threshold, can no longer reach it, or (under a disruption budget) a device is
    done and frees room for the next one. Only admitted members count: the others get the
    revision at an evaluation, which makes a new watch."""

    size: int  # members of the batch
    needed: int  # of them running the revision healthy for the batch to succeed
    watched: frozenset[str]  # admitted members
    updated: set[str]
    failed: set[str]
    halt_only: bool = False  # paused: only a halt moves the rollout
    budget: bool = False  # a disruption budget holds members back

    def saw(self, name: str, state: Progress) -> bool:
        """A watched device's progress now; True when an evaluation may move the rollout."""
        done = name in self.updated or name in self.failed
        self.updated.discard(name)
        self.failed.discard(name)
        if state == "updated":
            self.updated.add(name)
        elif state == "failed":
            self.failed.add(name)
        if self.size - len(self.failed) < self.needed:
            return True
        if self.halt_only:
            return False
        if len(self.updated) >= self.needed:
            return True
        return self.budget and not done and state in ("updated", "failed")

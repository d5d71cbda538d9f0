"""Rollouts of EdgeWorkloads and EdgeDeviceSets that have a ``spec.rolloutPolicy``: which
revision of a workload, or of a set's configuration, each device gets, and the rollout's
status. No I/O: the operator's loops call it and carry out what it
returns (ControllerRevisions to write, Events, devices to reconcile).

State lives where it survives a restart and a leader change without a Kubernetes write per
device: the rollout's progress in ``status.rollout`` of the EdgeWorkload or EdgeDeviceSet
(the planner's :class:`~flotta.operator.rollout_plan.RolloutState`), the revisions in
ControllerRevisions,
and what each device was told in ``status.desiredRevisions`` of its EdgeDevice, which the
operator writes together with ``desiredVersion`` (the write it makes anyway when a device's
desired state changes).

Which revision a device gets:

- the target revision once the rollout admitted it (``rollout_plan``), or once complete;
- otherwise the revision it was told last if that is still kept (a device a former rollout
  reached keeps what it runs until this rollout reaches it, even when that is this rollout's
  revision; such a revision is never pruned), else the stable revision (the last completed
  rollout's), else none (a new workload's first rollout).

A retry (a new value of the annotation ``flotta.io/retry-rollout``) gives the rollout a retry
token, a number that grows from retry to retry (the time of the retry, in seconds): the
devices that failed the target get it in their desired state (:meth:`Rollouts.retry_token`)
and apply the version once more; a failure reported under an older token is past (the device
counts as updating again, from the retry on), and a halted rollout goes on with the batch it
halted in.

Whether a device runs the target healthy is read from its reports through the versions the
operator assembled for it: each assembled version remembers the revisions it carries. The
reports come from the EdgeDevice status (the bridge's writes, the authority after a restart)
and, while rollouts are under way, straight from the devices' MQTT status reports
(:mod:`flotta.operator.version_reports`), so a batch does not wait for the bridge's
rate-limited writes: a device counts as updated (failed, waiting) when either says so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flotta.operator.assembly import RenderedConfiguration, render_configuration
from flotta.operator.configuration import build_configuration
from flotta.operator.errors import SelectorError
from flotta.operator.fleet_cache import Fleet, Key
from flotta.operator.rendering import RenderedWorkload
from flotta.operator.rollout_plan import (
    Counts,
    DeviceView,
    Failure,
    Plan,
    RolloutState,
    cutoff_hex,
    cutoff_value,
    plan,
    rank,
)
from flotta.operator.rollout_revisions import (
    SET_KIND,
    WORKLOAD_KIND,
    Revision,
    configuration_revision_of,
    revision_of,
)
from flotta.operator.rollout_views import (
    BatchWatch,
    Book,
    Tag,
    Target,
    Views,
    booked,
    booked_oldest,
    progress,
    tag,
)
from flotta.operator.version_reports import HeardVersions
from flotta.operator.workload_status import set_condition
from flotta.schemas.crd.common import Condition, kube_time
from flotta.schemas.crd.rollout import (
    MAX_RETRY_REQUEST,
    RETRY_ROLLOUT_ANNOTATION,
    RolloutStatus,
    parse_duration,
)

logger = logging.getLogger(__name__)

HISTORY = 10  # ControllerRevisions kept per workload beyond the stable and target ones
Told = Callable[[Key], Mapping[str, str]]  # device -> {"EdgeWorkload/<name>": revision}
Heard = Callable[[str], HeardVersions | None]  # device id -> its latest status report's


@dataclass
class Runtime:
    """One workload's rollout, in memory."""

    key: Key
    target: Revision
    stable: Revision | None
    state: RolloutState
    kind: str = WORKLOAD_KIND
    admitted: dict[str, datetime] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # targets seen since the rollout started
    joined: set[str] = field(default_factory=set)
    effective: object = None  # the render the target was taken from (identity)
    renders: dict[str, RenderedWorkload] = field(default_factory=dict)  # by revision name
    renders_configuration: dict[str, RenderedConfiguration] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    halted_reported: bool = False
    retry: int = 0  # the latest retry's token; 0: not retried
    retry_request: str = ""  # the retry annotation's value acted on last
    ranks: dict[str, int] = field(default_factory=dict)  # of the devices, for this revision
    views: Views = field(init=False)
    watch: BatchWatch | None = None  # the current batch, between evaluations

    def __post_init__(self) -> None:
        workload = self.key[1] if self.kind == WORKLOAD_KIND else ""
        self.views = Views(Target(tag(self.owner, self.target.name), workload), self.key[0])

    @property
    def owner(self) -> str:
        return self.target.key

    @property
    def complete(self) -> bool:
        return self.state.phase == "Complete"


@dataclass
class Evaluation:
    """What the operator does after evaluating a rollout."""

    status: dict[str, Any] | None  # status.rollout; None: remove it
    events: list[tuple[str, str, str]] = field(default_factory=list)
    reconcile: set[Key] = field(default_factory=set)
    put: list[Revision] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # ControllerRevision names
    phase: str = ""
    batch: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class Rollouts:
    def __init__(
        self,
        fleet: Fleet,
        *,
        told: Told = lambda _key: {},
        heard: Heard = lambda _device_id: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._fleet = fleet
        self._told = told
        self._heard = heard
        self._clock = clock
        self._revisions: dict[tuple[str, str], Revision] = {}  # (namespace, name)
        self._runtimes: dict[tuple[str, str, str], Runtime] = {}  # (kind, namespace, name)
        self._set_renders: dict[Key, tuple[object, RenderedConfiguration]] = {}
        self._book: dict[Key, Book] = {}
        self._unwritten: dict[tuple[str, str], Revision] = {}
        self._due: set[tuple[str, str, str]] = set()  # (kind, *key): reports may move them
        # What workloads without a policy render (with their uid): a policy added with a
        # change rolls the change out from there.
        self._plain: dict[Key, tuple[str, RenderedWorkload]] = {}

    # ---- revisions -----------------------------------------------------------------------

    def load_revisions(self, revisions: Iterable[Revision]) -> None:
        for revision in revisions:
            self._revisions[(revision.namespace, revision.name)] = revision

    def revision(self, namespace: str, name: str) -> Revision | None:
        return self._revisions.get((namespace, name)) if name else None

    def _keep(self, revision: Revision) -> None:
        key = (revision.namespace, revision.name)
        self._revisions[key] = revision
        self._unwritten[key] = revision

    def _next_number(self, revision: Revision) -> int:
        numbers = [
            r.number
            for (ns, _), r in self._revisions.items()
            if ns == revision.namespace and r.owner == revision.owner and r.kind == revision.kind
        ]
        return max(numbers, default=0) + 1

    # ---- which revision each device gets -------------------------------------------------

    def active(self, kind: str = WORKLOAD_KIND) -> list[Key]:
        """Workloads (or sets) whose rollout is under way (evaluated periodically)."""
        return [rt.key for rt in self._runtimes.values() if rt.kind == kind and not rt.complete]

    def choose(
        self, device: Key, workloads: list[RenderedWorkload]
    ) -> tuple[list[RenderedWorkload], tuple[Tag, ...]]:
        """The workloads a device's desired state carries, each at the revision it gets, and
        the revisions of rollouts among them."""
        chosen: list[RenderedWorkload] = []
        tags: list[Tag] = []
        told: Mapping[str, str] | None = None
        for rendered in workloads:
            runtime = self._runtime(WORKLOAD_KIND, (rendered.namespace, rendered.name))
            if runtime is None:
                chosen.append(rendered)
                continue
            revision: Revision | None = runtime.target
            if not runtime.complete and device[1] not in runtime.admitted:
                if told is None:
                    told = self._told(device)
                revision = self._kept(runtime, told.get(runtime.owner, ""))
            if revision is None:
                continue
            chosen.append(self._render(runtime, revision, rendered))
            tags.append(tag(runtime.owner, revision.name))
        return chosen, tuple(tags)

    def choose_configuration(
        self, device: Key, set_name: str, current: RenderedConfiguration
    ) -> tuple[RenderedConfiguration, Tag | None]:
        """The configuration a member of a set with a rollout policy gets, and its revision."""
        runtime = self._runtime(SET_KIND, (device[0], set_name))
        if runtime is None:
            return current, None
        revision: Revision | None = runtime.target
        if not runtime.complete and device[1] not in runtime.admitted:
            revision = self._kept(runtime, self._told(device).get(runtime.owner, ""))
        if revision is None or revision is runtime.target:
            return current, tag(runtime.owner, runtime.target.name)
        cached = runtime.renders_configuration.get(revision.name)
        if cached is None:
            cached = revision.rendered_configuration()
            runtime.renders_configuration[revision.name] = cached
        return cached, tag(runtime.owner, revision.name)

    def _kept(self, runtime: Runtime, told: str) -> Revision | None:
        """What a device the rollout has not admitted gets: the revision it was told last,
        even the target's (a superseded rollout of the same content reached it: the same
        bytes), else the stable one. A retry of halted content has new bytes: a device told
        it before gets the stable revision until its batch."""
        target = runtime.target
        if told == target.name and target.attempt == 0:
            return target
        if told and told != target.name:
            kept = self.revision(runtime.key[0], told)
            if kept is not None:
                return kept
        return runtime.stable

    def changed(self, key: Key, names: set[str]) -> set[str]:
        """A workload's content changed: of the devices it targets still (``names``), the ones
        whose desired state changes with it. Under a rollout the devices it has not admitted
        keep the revision they were told, and are not assembled again for nothing."""
        entry = self._fleet.workloads.get(key)
        if entry is None:
            return names
        if entry.model.spec.rollout_policy is None:
            self._note_plain(key)
            return names
        if (WORKLOAD_KIND, *key) not in self._runtimes and key not in self._plain:
            return names  # after a start: the first evaluation or reconcile takes it up
        runtime = self._runtime(WORKLOAD_KIND, key)
        if runtime is None:
            return names
        return {name for name in names if self._moves(runtime, (key[0], name))}

    def _note_plain(self, key: Key) -> None:
        entry = self._fleet.workloads.get(key)
        effective = entry.effective if entry is not None else None
        if entry is None or effective is None:
            self._plain.pop(key, None)
        else:
            self._plain[key] = (entry.model.metadata.uid, effective)

    def _moves(self, runtime: Runtime, device: Key) -> bool:
        """Whether the revision of the workload the device gets differs from the one it was
        told last (sealed secrets aside: the fleet touches those devices anyway)."""
        told = self._told(device).get(runtime.owner)
        if runtime.complete or device[1] in runtime.admitted:
            revision: Revision | None = runtime.target
        else:
            revision = self._kept(runtime, told or "")
        if revision is None:
            return told is not None
        if revision is runtime.target and revision.attempt:
            return True  # a retry's bytes: whatever the device was told, they are new
        return told != revision.name

    def _render(
        self, runtime: Runtime, revision: Revision, current: RenderedWorkload
    ) -> RenderedWorkload:
        if revision is runtime.target and revision.attempt == 0:
            return current
        cached = runtime.renders.get(revision.name)
        if cached is None or cached.target != current.target:
            cached = revision.rendered(current.target)
            runtime.renders[revision.name] = cached
        return cached

    def heard_from(self, device_id: str) -> bool:
        """A device's reported versions changed (its report is in ``heard``): True when a
        rollout whose current batch it is in may move now (:meth:`take_due`)."""
        due = False
        for slot, runtime in self._runtimes.items():
            watch = runtime.watch
            if watch is None or device_id not in watch.watched:
                continue
            key = (runtime.key[0], device_id)
            state, _ = progress(
                runtime.views.target,
                self._fleet.devices.get(key),
                self._heard(device_id),
                self._book.get(key),
                runtime.retry,
            )
            if watch.saw(device_id, state):
                self._due.add(slot)
                due = True
        return due

    def take_due(self) -> list[tuple[str, Key]]:
        """The rollouts (kind, key) that reports may have moved since the last call."""
        due, self._due = self._due, set()
        return [(kind, (namespace, name)) for kind, namespace, name in sorted(due)]

    def record(self, device: Key, version: str, tags: tuple[Tag, ...]) -> None:
        """The operator assembled ``version`` for the device, carrying these revisions."""
        book = self._book.get(device)
        if not tags and book is None:
            return
        changed = booked(book, version, frozenset(tags))
        if changed is not None:
            self._book[device] = changed

    def forget(self, device: Key) -> None:
        self._book.pop(device, None)

    # ---- runtimes ------------------------------------------------------------------------

    def _source(self, kind: str, key: Key) -> tuple[Any, object] | None:
        """(model, what it renders now) of a workload or a set with a rollout policy; None
        without one. What it renders is a RenderedWorkload or a RenderedConfiguration, the
        same object while nothing changed."""
        if kind == WORKLOAD_KIND:
            entry = self._fleet.workloads.get(key)
            if entry is None or entry.model.spec.rollout_policy is None:
                return None
            return entry.model, entry.effective
        device_set = self._fleet.sets.get(key)
        if device_set is None or device_set.spec.rollout_policy is None:
            return None
        known = self._set_renders.get(key)
        if known is None or known[0] is not device_set.spec:
            configuration = build_configuration(
                device_set.spec, lambda name: self._fleet.configmap(key[0], name)
            )
            known = (device_set.spec, render_configuration(configuration))
            self._set_renders[key] = known
        return device_set, known[1]

    @staticmethod
    def _revision_of(key: Key, current: object) -> Revision:
        if isinstance(current, RenderedWorkload):
            return revision_of(current)
        assert isinstance(current, RenderedConfiguration)
        return configuration_revision_of(key[0], key[1], current)

    def _targets(self, kind: str, key: Key) -> set[str]:
        if kind == WORKLOAD_KIND:
            return self._fleet.targets(key)
        return self._fleet.members(key)

    def _runtime(self, kind: str, key: Key) -> Runtime | None:
        slot = (kind, *key)
        source = self._source(kind, key)
        if source is None:
            self._runtimes.pop(slot, None)
            if kind == SET_KIND:
                self._set_renders.pop(key, None)
            else:
                self._note_plain(key)
            return None
        model, current = source
        runtime = self._runtimes.get(slot)
        if current is None or (runtime is not None and runtime.effective is current):
            return runtime
        target = self._revision_of(key, current)
        if runtime is None:
            runtime = self._resume(kind, key, model, target)
        elif runtime.target.name != target.name:
            runtime = self._restart(runtime, target)
            runtime.retry_request = retry_request(model)
        runtime.effective = current
        self._runtimes[slot] = runtime
        return runtime

    def _numbered(self, target: Revision) -> Revision:
        """The target with its revision number and retry attempt, kept for writing."""
        known = self.revision(target.namespace, target.name)
        attempt = 0
        if known is not None:
            attempt = known.attempt + 1 if known.halted else known.attempt
        numbered = replace(
            target,
            number=self._next_number(target),
            attempt=attempt,
            halted=False,
        )
        self._keep(numbered)
        return numbered

    def _plain_revision(self, plain: RenderedWorkload) -> Revision:
        """The revision of what devices ran without a policy (its bytes: no retry)."""
        revision = revision_of(plain)
        known = self.revision(revision.namespace, revision.name)
        if known is not None and known.attempt == 0 and not known.halted:
            return known
        revision = replace(revision, number=self._next_number(revision))
        self._keep(revision)
        return revision

    def _resume(self, kind: str, key: Key, model: Any, target: Revision) -> Runtime:
        """The rollout after an operator start (from status.rollout and the devices'
        status.desiredRevisions), or of a workload that just got a policy."""
        status = model.status
        saved = status.rollout if status is not None else None
        now = self._clock()
        uid, plain = self._plain.pop(key, ("", None)) if kind == WORKLOAD_KIND else ("", None)
        if uid != model.metadata.uid:
            plain = None  # a workload of that name deleted and created again
        if saved is not None and saved.revision_name == target.name:
            known = self.revision(key[0], target.name)
            target = known if known is not None else replace(target, number=saved.revision or 0)
            stable = self.revision(key[0], saved.stable_revision_name)
            state = _state_of(saved)
            if saved.stable_revision_name and stable is None and state.phase != "Complete":
                logger.warning(
                    "workload %s/%s: stable revision %s is gone; rolling out to every device",
                    *key,
                    saved.stable_revision_name,
                )
                state = replace(state, phase="Complete")
            runtime = Runtime(key, target, stable, state, kind=kind)
            runtime.retry = saved.retry or 0
            if saved.retry_request is not None:
                runtime.retry_request = saved.retry_request
            else:  # written before retries existed: whatever is there now is not new
                runtime.retry_request = retry_request(model)
        elif plain is not None:
            # The policy came with this change (or alone): devices run what the workload
            # rendered without it, and the change rolls out from there.
            runtime = self._fresh(kind, key, target, self._plain_revision(plain))
        elif saved is None and (
            kind == SET_KIND or (status is not None and status.observed_generation is not None)
        ):
            # The workload ran before it had a policy (or before this operator version), or a
            # set's first configuration: what devices run now is its current revision.
            target = self._numbered(target)
            runtime = Runtime(
                key, target, target, RolloutState(phase="Complete", start=now), kind=kind
            )
        else:
            stable = None
            if saved is not None:
                stable_name = (
                    saved.revision_name if saved.phase == "Complete" else saved.stable_revision_name
                )
                stable = self.revision(key[0], stable_name)
            runtime = self._fresh(kind, key, target, stable)
        if saved is None or saved.revision_name != target.name:
            runtime.retry_request = retry_request(model)
        runtime.known = self._initial_known(runtime, runtime.state.start or now)
        if not runtime.complete:
            self._recover_admitted(runtime, runtime.state.batch_start or now)
        return runtime

    def _recover_admitted(self, runtime: Runtime, since: datetime) -> None:
        """Devices told the target before the restart stay admitted (their EdgeDevice's
        status.desiredRevisions, written with desiredVersion)."""
        key, target = runtime.key, runtime.target
        for name in self._targets(runtime.kind, key):
            told = self._told((key[0], name)).get(target.key, "")
            if not told:
                device = self._fleet.devices.get((key[0], name))
                revisions = device.status.desired_revisions if device and device.status else {}
                told = (revisions or {}).get(target.key, "")
            if told == target.name:
                runtime.admitted[name] = since
        self._seed_book(runtime)

    def _seed_book(self, runtime: Runtime) -> None:
        """What each device was told before the restart (desiredVersion and
        desiredRevisions), so its reports can be read before it is assembled again."""
        key = runtime.key
        for name in self._targets(runtime.kind, key):
            device = self._fleet.devices.get((key[0], name))
            status = device.status if device is not None else None
            if status is None or not status.desired_version or not status.desired_revisions:
                continue
            tags = frozenset(tag(k, v) for k, v in status.desired_revisions.items())
            changed = booked_oldest(self._book.get((key[0], name)), status.desired_version, tags)
            if changed is not None:
                self._book[(key[0], name)] = changed

    def _initial_known(self, runtime: Runtime, start: datetime) -> set[str]:
        key = runtime.key
        known = set()
        for name in self._targets(runtime.kind, key):
            device = self._fleet.devices.get((key[0], name))
            created = device.metadata.creation_timestamp if device is not None else None
            if created is None or created <= start:
                known.add(name)
        return known

    def _fresh(self, kind: str, key: Key, target: Revision, stable: Revision | None) -> Runtime:
        now = self._clock()
        if stable is not None and stable.name == target.name:
            return Runtime(
                key, stable, stable, RolloutState(phase="Complete", start=now), kind=kind
            )
        target = self._numbered(target)
        runtime = Runtime(key, target, stable, RolloutState(start=now), kind=kind)
        runtime.known = set(self._targets(kind, key))
        if kind == SET_KIND and target.attempt:
            # A configuration whose rollout halted before, rolled out again: the devices that
            # failed it get it once more through a retry token (a workload gets new bytes).
            runtime.retry = int(now.timestamp())
        return runtime

    def _restart(self, runtime: Runtime, target: Revision) -> Runtime:
        """The spec changed: a new rollout from the last completed revision."""
        stable = runtime.target if runtime.complete else runtime.stable
        if runtime.state.phase == "Halted":
            self._keep(replace(runtime.target, halted=True))
        fresh = self._fresh(runtime.kind, runtime.key, target, stable)
        logger.info(
            "%s %s/%s: rollout of revision %s (%s) from %s",
            runtime.kind,
            *runtime.key,
            fresh.target.number,
            fresh.target.name,
            stable.name if stable is not None else "nothing",
        )
        return fresh

    # ---- evaluation ----------------------------------------------------------------------

    def evaluate(self, key: Key, kind: str = WORKLOAD_KIND) -> Evaluation | None:
        """Where the rollout of a workload (or a set) stands now; None: it has no policy."""
        slot = (kind, *key)
        had = slot in self._runtimes
        runtime = self._runtime(kind, key)
        source = self._source(kind, key) if runtime is not None else None
        if runtime is None or source is None:
            if had:  # the policy went away: every device gets the current revision at once
                return Evaluation(None, reconcile={(key[0], n) for n in self._targets(kind, key)})
            return None
        model = source[0]
        policy = model.spec.rollout_policy
        now = self._clock()
        evaluation = Evaluation(None)
        targets = sorted(self._targets(kind, key))  # a list, in a stable order
        for name in targets:
            if name not in runtime.known:
                runtime.known.add(name)
                if not runtime.complete:
                    runtime.joined.add(name)
        views = self._views(runtime, targets)
        request = retry_request(model)
        if request != runtime.retry_request:
            runtime.retry_request = request
            retried = self._retry(runtime, views, policy, now)
            evaluation.reconcile |= {(key[0], name) for name in retried}
            number = runtime.target.number
            evaluation.events.append(
                (
                    "Normal",
                    "RolloutRetried",
                    f"revision {number}: retried; {len(retried)} devices that failed it try "
                    "it again",
                )
            )
            views = self._views(runtime, targets)
        was = runtime.state.phase
        if runtime.complete:
            result = None
        else:
            try:
                result = plan(
                    policy,
                    runtime.state,
                    views,
                    seed=runtime.target.name,
                    revision=runtime.target.number,
                    now=now,
                    ranks=self._ranks(runtime, targets),
                )
            except SelectorError as exc:
                logger.warning("%s %s/%s: rollout policy: %s", kind, *key, exc)
                return None
            for name in result.newly_admitted:
                runtime.admitted[name] = now
                if self._moves(runtime, (key[0], name)):  # not when it runs the target
                    evaluation.reconcile.add((key[0], name))
            runtime.state = result.state
            evaluation.events.extend(result.events)
            if result.state.phase == "Complete":
                runtime.stable = runtime.target
                # Every device gets the target now; the admitted ones have it already.
                evaluation.reconcile |= {(key[0], n) for n in targets if n not in runtime.admitted}
            if result.state.phase == "Halted" and was != "Halted":
                self._keep(replace(runtime.target, halted=True))
            runtime.watch = _watch(result, bool(policy.disruption_budget))
        evaluation.status = self._status(runtime, result, views, model)
        evaluation.phase = runtime.state.phase
        evaluation.batch = runtime.state.batch + 1
        evaluation.put = [r for r in self._unwritten.values() if (r.namespace, r.owner) == key]
        evaluation.delete = self._prunable(runtime)
        return evaluation

    def _retry(
        self, runtime: Runtime, views: list[DeviceView], policy: Any, now: datetime
    ) -> list[str]:
        """Retry the rollout: a new token; the devices that failed the target (or did not
        report in time) count from now on; a halted rollout goes on. Returns those devices."""
        timeout = parse_duration(policy.batch_timeout)
        retried = [
            view.name
            for view in views
            if view.admitted_at is not None
            and (
                view.progress == "failed"
                or (view.progress == "updating" and now - view.admitted_at >= timeout)
            )
        ]
        runtime.retry = max(int(now.timestamp()), runtime.retry + 1)
        for name in retried:
            if name in runtime.admitted:
                runtime.admitted[name] = now
        state = runtime.state
        if state.phase == "Halted":
            runtime.state = replace(state, phase="Progressing", batch_start=now)
        elif not runtime.complete:
            runtime.state = replace(state, batch_start=now)
        logger.info(
            "%s %s/%s: rollout of revision %s retried (token %d), %d devices try again",
            runtime.kind,
            *runtime.key,
            runtime.target.number,
            runtime.retry,
            len(retried),
        )
        return retried

    def retry_token(self, device: Key, tags: tuple[Tag, ...]) -> int:
        """The retry token for a device's desired state that carries these revisions: the
        latest retry of a rollout whose target it carries and failed; 0 for the others (a
        device that runs the target, or has not had it, needs no token, and an agent older
        than tokens refuses a desired state with one)."""
        token = 0
        for item in tags:
            owner, revision = item.split("=", 1)
            kind, name = owner.split("/", 1)
            runtime = self._runtimes.get((kind, device[0], name))
            if runtime is None or runtime.retry <= token or revision != runtime.target.name:
                continue
            if self._failed_target(device, runtime):
                token = runtime.retry
        return token

    def _failed_target(self, key: Key, runtime: Runtime) -> bool:
        """Whether the device reported a failure of a version that carries the target, under
        whatever retry token."""
        entry = self._fleet.devices.get(key)
        status = entry.status if entry is not None else None
        heard = self._heard(key[1])
        book: Mapping[str, frozenset[Tag]] = self._book.get(key, {})
        wanted = tag(runtime.owner, runtime.target.name)
        for failed in (
            status.failed_version if status is not None else None,
            heard.failed if heard is not None else None,
        ):
            if failed is not None and failed.version and wanted in book.get(failed.version, ()):
                return True
        return False

    def written(self, revision: Revision) -> None:
        key = (revision.namespace, revision.name)
        if self._unwritten.get(key) is revision:
            del self._unwritten[key]

    def deleted(self, namespace: str, name: str) -> None:
        self._revisions.pop((namespace, name), None)

    def _prunable(self, runtime: Runtime) -> list[str]:
        namespace = runtime.key[0]
        mine = sorted(
            (
                r
                for (ns, _), r in self._revisions.items()
                if ns == namespace and r.owner == runtime.key[1]
            ),
            key=lambda r: r.number,
            reverse=True,
        )
        keep = {runtime.target.name, runtime.stable.name if runtime.stable else ""}
        old = [r.name for r in mine if r.name not in keep][HISTORY:]
        if old:  # a revision a device still runs stays: it keeps it until a batch moves it
            told = {self._told((namespace, n)).get(runtime.owner) for n in runtime.known}
            old = [name for name in old if name not in told]
        return old

    def _views(self, runtime: Runtime, names: list[str]) -> list[DeviceView]:
        return runtime.views.views(
            names,
            devices=self._fleet.devices,
            heard=self._heard,
            books=self._book,
            admitted=runtime.admitted,
            joined=runtime.joined,
            admitted_by_default=runtime.state.start if runtime.complete else None,
            retry=runtime.retry,
        )

    @staticmethod
    def _ranks(runtime: Runtime, names: list[str]) -> dict[str, int]:
        ranks = runtime.ranks
        seed = runtime.target.name
        for name in names:
            if name not in ranks:
                ranks[name] = rank(seed, name)
        return ranks

    def _status(
        self,
        runtime: Runtime,
        result: Plan | None,
        views: list[DeviceView],
        model: Any,
    ) -> dict[str, Any]:
        state = runtime.state
        now = self._clock().replace(microsecond=0)
        if result is not None:
            counts = result.counts
            failures = result.failures
            message = result.message
            batches = result.batches
        else:
            updated = sum(1 for v in views if v.progress == "updated")
            counts = Counts(targeted=len(views), updated=updated, pending=len(views) - updated)
            failures = ()
            message = f"revision {runtime.target.number} is the stable revision"
            batches = 0
        halted = state.phase == "Halted"
        progressing = Condition(
            type="Progressing",
            status="True" if state.phase == "Progressing" else "False",
            reason=state.phase,
            message=message[:1024],
            last_transition_time=now,
            observed_generation=model.metadata.generation,
        )
        halt = Condition(
            type="Halted",
            status="True" if halted else "False",
            reason="ThresholdMissed" if halted else "NotHalted",
            message=message[:1024] if halted else "",
            last_transition_time=now,
            observed_generation=model.metadata.generation,
        )
        previous = runtime.conditions
        if not previous and model.status is not None and model.status.rollout is not None:
            previous = list(model.status.rollout.conditions or [])
        runtime.conditions = set_condition(set_condition(previous, progressing), halt)
        status: dict[str, Any] = {
            "revision": runtime.target.number,
            "revisionName": runtime.target.name,
            "stableRevisionName": runtime.stable.name if runtime.stable else "",
            "phase": state.phase,
            "currentBatch": state.batch + 1 if state.batch >= 0 else None,
            "batches": batches or None,
            "startTime": _iso(state.start),
            "batchStartTime": _iso(state.batch_start),
            "batchCutoffs": [cutoff_hex(c) for c in state.cutoffs],
            "targetedDevices": counts.targeted,
            "updatedDevices": counts.updated,
            "updatingDevices": counts.updating,
            "failedDevices": counts.failed,
            "pendingDevices": counts.pending,
            "batchDevices": counts.batch_devices,
            "batchUpdatedDevices": counts.batch_updated,
            "failures": [_failure_api(name, failure) for name, failure in failures],
            "message": message[:1024],
            "conditions": [c.to_api() for c in runtime.conditions],
            "observedGeneration": model.metadata.generation,
            "retry": runtime.retry or None,
            "retryRequest": runtime.retry_request,
        }
        return status


def retry_request(model: Any) -> str:
    """The retry annotation's value on a workload or set (a long one by its SHA-256)."""
    value = str(model.metadata.annotations.get(RETRY_ROLLOUT_ANNOTATION, ""))
    if len(value) <= MAX_RETRY_REQUEST:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _watch(result: Plan, budget: bool) -> BatchWatch | None:
    """What of the current batch reports may move, after an evaluation."""
    phase = result.state.phase
    if phase not in ("Progressing", "Paused"):
        return None  # complete, halted, or waiting for an approval (a spec change)
    watched = frozenset(name for name in result.batch_members if name in result.admitted)
    outcomes = result.outcomes
    return BatchWatch(
        size=len(result.batch_members),
        needed=result.needed,
        watched=watched,
        updated={name for name in watched if outcomes.get(name) == "updated"},
        failed={name for name in watched if outcomes.get(name) == "failed"},
        halt_only=phase == "Paused",
        budget=budget,
    )


def _state_of(saved: RolloutStatus) -> RolloutState:
    return RolloutState(
        phase=saved.phase or "Progressing",
        batch=(saved.current_batch or 0) - 1,
        cutoffs=tuple(cutoff_value(c) for c in saved.batch_cutoffs),
        start=saved.start_time,
        batch_start=saved.batch_start_time,
    )


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return kube_time(value)


def _failure_api(name: str, failure: Failure) -> dict[str, Any]:
    item: dict[str, Any] = {"device": name, "reason": failure.reason}
    if failure.workload:
        item["workload"] = failure.workload
    if failure.container:
        item["container"] = failure.container
    if failure.exit_code is not None:
        item["exitCode"] = failure.exit_code
    if failure.message:
        item["message"] = failure.message[:1024]
    if failure.rolled_back is not None:
        item["rolledBack"] = failure.rolled_back
    if failure.time is not None:
        item["time"] = _iso(failure.time)
    return item

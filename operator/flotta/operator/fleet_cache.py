"""The in-memory fleet: caches of the watched objects and the indexes that say which devices a
change affects. Pure (no I/O): the watchers feed it, the controller asks it.

Every ``apply_*``/``delete_*`` returns a :class:`Changes`: the devices whose desired state may
have changed (to reconcile) and the workloads whose status may have changed. A label change
on one device retargets that device only; a workload change touches its old and new targets;
a Secret or ConfigMap change touches the targets of the workloads that read it. Of the devices
a workload's new content touches, those it targeted before and after and touched for nothing
else are named apart (``Changes.rendered``): under a rollout most of them keep what they run,
and the rollout says which change (``Rollouts.changed``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotta.operator.configuration import referenced_configmaps as config_configmaps
from flotta.operator.rendering import (
    InvalidWorkload,
    RenderedWorkload,
    Target,
    render_workload,
    workload_references,
)
from flotta.schemas.crd.common import MEMBER_OF_LABEL, WORKLOAD_LABEL_PREFIX
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.workload import EdgeWorkload

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Changes:
    devices: set[Key] = field(default_factory=set)
    workloads: set[Key] = field(default_factory=set)  # status (counts, conditions) to refresh
    sets: set[Key] = field(default_factory=set)  # member counts to refresh
    # Of ``devices``: per workload whose rendered content changed, the device names touched
    # by that content alone (targeted before and after, nothing else of theirs changed).
    rendered: dict[Key, set[str]] = field(default_factory=dict)

    def touch(self, keys: Iterable[Key]) -> None:
        """Devices whose desired state may change for a reason of their own."""
        keys = set(keys)
        self.devices |= keys
        for (namespace, _), names in self.rendered.items():
            names.difference_update(name for ns, name in keys if ns == namespace)

    def content_only(self) -> set[Key]:
        """The devices touched by workloads' content alone."""
        return {(key[0], name) for key, names in self.rendered.items() for name in names}

    def __or__(self, other: Changes) -> Changes:
        merged = Changes(
            set(self.devices),
            self.workloads | other.workloads,
            self.sets | other.sets,
            {key: set(names) for key, names in self.rendered.items()},
        )
        merged.touch(other.devices - other.content_only())
        own = self.devices - self.content_only()
        for key, names in other.rendered.items():
            merged.rendered.setdefault(key, set()).update(
                name for name in names if (key[0], name) not in own
            )
        merged.devices |= other.devices
        return merged

    def __bool__(self) -> bool:
        return bool(self.devices or self.workloads or self.sets)


@dataclass
class WorkloadEntry:
    model: EdgeWorkload
    pod_spec: dict[str, Any]
    result: RenderedWorkload | InvalidWorkload
    last_valid: RenderedWorkload | None  # what devices keep while the workload is invalid
    secrets: set[str]
    configmaps: set[str]

    @property
    def effective(self) -> RenderedWorkload | None:
        return self.result if isinstance(self.result, RenderedWorkload) else self.last_valid

    @property
    def target(self) -> Target | None:
        effective = self.effective
        return effective.target if effective is not None else None


def _selection_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels that selectors see; the operator's own ``workload/`` labels are not among them
    (otherwise writing them would retarget devices)."""
    return {k: v for k, v in labels.items() if not k.startswith(WORKLOAD_LABEL_PREFIX)}


class Fleet:
    def __init__(self) -> None:
        self.devices: dict[Key, EdgeDevice] = {}
        self.sets: dict[Key, EdgeDeviceSet] = {}
        self.workloads: dict[Key, WorkloadEntry] = {}
        self.secrets: dict[Key, dict[str, str]] = {}
        self.configmaps: dict[Key, dict[str, str]] = {}
        self._labels: dict[Key, dict[str, str]] = {}
        self._by_namespace: defaultdict[str, set[str]] = defaultdict(set)
        self._by_label: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
        self._workloads_by_namespace: defaultdict[str, set[str]] = defaultdict(set)
        self._targets: dict[Key, set[str]] = {}
        self._device_workloads: defaultdict[Key, set[str]] = defaultdict(set)
        self._secret_users: defaultdict[Key, set[str]] = defaultdict(set)
        self._configmap_users: defaultdict[Key, set[str]] = defaultdict(set)

    # ---- queries -------------------------------------------------------------------------

    def device_set(self, key: Key) -> EdgeDeviceSet | None:
        labels = self._labels.get(key, {})
        set_name = labels.get(MEMBER_OF_LABEL)
        return self.sets.get((key[0], set_name)) if set_name else None

    def workloads_of(self, key: Key) -> list[RenderedWorkload]:
        """The rendered workloads that target a device, by name."""
        namespace = key[0]
        found = []
        for name in sorted(self._device_workloads.get(key, ())):
            entry = self.workloads.get((namespace, name))
            effective = entry.effective if entry is not None else None
            if effective is not None:
                found.append(effective)
        return found

    def workload_names_of(self, key: Key) -> set[str]:
        return set(self._device_workloads.get(key, ()))

    def namespaces_of(self, name: str) -> set[str]:
        """Namespaces that hold a device of this name (device ids are unique fleet-wide)."""
        return {ns for ns, names in self._by_namespace.items() if name in names}

    def targets(self, workload: Key) -> set[str]:
        return set(self._targets.get(workload, ()))

    def members(self, set_key: Key) -> set[str]:
        return set(self._by_label.get((set_key[0], MEMBER_OF_LABEL, set_key[1]), ()))

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.configmaps.get((namespace, name))

    def select(self, namespace: str, target: Target) -> set[str]:
        """Device names of a namespace that a target picks, through the label index."""
        if target.device is not None:
            return {target.device} if (namespace, target.device) in self.devices else set()
        selector = target.selector
        if selector is None:
            return set()
        if selector.match_labels:
            candidates = min(
                (self._by_label.get((namespace, k, v), set()) for k, v in selector.match_labels),
                key=len,
            )
        else:
            candidates = self._by_namespace.get(namespace, set())
        return {
            name for name in candidates if selector.matches(self._labels.get((namespace, name), {}))
        }

    # ---- devices -------------------------------------------------------------------------

    def apply_device(self, device: EdgeDevice) -> Changes:
        meta = device.metadata
        key = (meta.namespace, meta.name)
        old = self.devices.get(key)
        self.devices[key] = device
        labels = _selection_labels(meta.labels)
        old_labels = self._labels.get(key)
        changes = Changes()
        if old_labels != labels:
            self._index_labels(key, old_labels, labels)
            changes |= self._retarget_device(key, labels)
            old_set = (old_labels or {}).get(MEMBER_OF_LABEL)
            new_set = labels.get(MEMBER_OF_LABEL)
            changes.sets |= {(key[0], s) for s in (old_set, new_set) if s}
            changes.devices.add(key)
        if old is None or _desired_inputs(old) != _desired_inputs(device):
            changes.devices.add(key)
        if old is None or _counted(old) != _counted(device):
            changes.workloads |= {(key[0], w) for w in self._device_workloads.get(key, ())}
            if set_name := labels.get(MEMBER_OF_LABEL):
                changes.sets.add((key[0], set_name))  # its rollout reads the device too
        return changes

    def delete_device(self, key: Key) -> Changes:
        if key not in self.devices:
            return Changes()
        del self.devices[key]
        labels = self._labels.get(key, {})
        changes = Changes(devices={key})
        if set_name := labels.get(MEMBER_OF_LABEL):
            changes.sets.add((key[0], set_name))
        self._index_labels(key, labels, None)
        for name in self._device_workloads.pop(key, set()):
            self._targets.get((key[0], name), set()).discard(key[1])
            changes.workloads.add((key[0], name))
        return changes

    def _index_labels(
        self, key: Key, old: Mapping[str, str] | None, new: Mapping[str, str] | None
    ) -> None:
        namespace, name = key
        for k, v in (old or {}).items():
            bucket = self._by_label.get((namespace, k, v))
            if bucket is not None:
                bucket.discard(name)
                if not bucket:
                    del self._by_label[(namespace, k, v)]
        if new is None:
            self._labels.pop(key, None)
            self._by_namespace[namespace].discard(name)
            return
        for k, v in new.items():
            self._by_label[(namespace, k, v)].add(name)
        self._labels[key] = dict(new)
        self._by_namespace[namespace].add(name)

    def _retarget_device(self, key: Key, labels: Mapping[str, str]) -> Changes:
        namespace, name = key
        changes = Changes()
        for workload_name in self._workloads_by_namespace.get(namespace, ()):
            workload_key = (namespace, workload_name)
            target = self.workloads[workload_key].target
            selected = target is not None and target.matches(name, labels)
            targets = self._targets.setdefault(workload_key, set())
            if selected != (name in targets):
                changes.workloads.add(workload_key)
                if selected:
                    targets.add(name)
                    self._device_workloads[key].add(workload_name)
                else:
                    targets.discard(name)
                    self._device_workloads[key].discard(workload_name)
        return changes

    # ---- sets ----------------------------------------------------------------------------

    def apply_set(self, device_set: EdgeDeviceSet) -> Changes:
        key = (device_set.metadata.namespace, device_set.metadata.name)
        old = self.sets.get(key)
        self.sets[key] = device_set
        changes = Changes(sets={key})
        if old is None or old.spec != device_set.spec:
            changes.devices |= {(key[0], name) for name in self.members(key)}
        return changes

    def delete_set(self, key: Key) -> Changes:
        if self.sets.pop(key, None) is None:
            return Changes()
        return Changes(devices={(key[0], name) for name in self.members(key)})

    # ---- workloads -----------------------------------------------------------------------

    def apply_workload(self, workload: EdgeWorkload, pod_spec: dict[str, Any]) -> Changes:
        key = (workload.metadata.namespace, workload.metadata.name)
        old = self.workloads.get(key)
        if old is not None and _render_inputs(old.model, old.pod_spec) == _render_inputs(
            workload, pod_spec
        ):
            # A status write (ours, every few seconds while devices change) or a label that
            # nothing renders: rendering again and selecting over the fleet would change nothing.
            old.model = workload
            return Changes()
        secrets, configmaps = workload_references(pod_spec, workload)
        entry = WorkloadEntry(
            workload,
            pod_spec,
            InvalidWorkload(key[0], key[1], ()),
            old.effective if old is not None else None,
            secrets,
            configmaps,
        )
        self._index_references(key, old, entry)
        self.workloads[key] = entry
        self._workloads_by_namespace[key[0]].add(key[1])
        return self._render(key) | Changes(workloads={key})

    def delete_workload(self, key: Key) -> Changes:
        old = self.workloads.pop(key, None)
        if old is None:
            return Changes()
        self._index_references(key, old, None)
        self._workloads_by_namespace[key[0]].discard(key[1])
        targets = self._targets.pop(key, set())
        for name in targets:
            self._device_workloads[(key[0], name)].discard(key[1])
        return Changes(devices={(key[0], name) for name in targets})

    def _index_references(
        self, key: Key, old: WorkloadEntry | None, new: WorkloadEntry | None
    ) -> None:
        namespace, name = key
        if old is not None:
            for secret in old.secrets:
                self._secret_users[(namespace, secret)].discard(name)
            for configmap in old.configmaps:
                self._configmap_users[(namespace, configmap)].discard(name)
        if new is not None:
            for secret in new.secrets:
                self._secret_users[(namespace, secret)].add(name)
            for configmap in new.configmaps:
                self._configmap_users[(namespace, configmap)].add(name)

    def _render(self, key: Key) -> Changes:
        """Render a workload again from the caches and retarget it."""
        entry = self.workloads[key]
        namespace = key[0]
        old_effective = entry.effective
        result = render_workload(
            entry.model,
            entry.pod_spec,
            secrets=lambda name: self.secrets.get((namespace, name)),
            configmaps=lambda name: self.configmaps.get((namespace, name)),
        )
        entry.result = result
        if isinstance(result, RenderedWorkload):
            entry.last_valid = result
        old_targets = self._targets.get(key, set())
        target = entry.target
        new_targets = self.select(namespace, target) if target is not None else set()
        self._targets[key] = new_targets
        for name in old_targets - new_targets:
            self._device_workloads[(namespace, name)].discard(key[1])
        for name in new_targets - old_targets:
            self._device_workloads[(namespace, name)].add(key[1])
        changed = (
            old_effective is None
            or entry.effective is None
            or (
                old_effective.json != entry.effective.json
                or old_effective.registry_secret != entry.effective.registry_secret
                or old_effective.secrets != entry.effective.secrets
            )
        )
        touched = old_targets ^ new_targets
        # Sealed secret contents may change without the rendered JSON changing.
        if entry.effective is not None and (
            entry.effective.secrets or entry.effective.registry_secret
        ):
            touched |= new_targets
        content = (new_targets - touched) if changed else set()
        return Changes(
            devices={(namespace, name) for name in touched | content},
            workloads={key},
            rendered={key: content} if changed else {},
        )

    # ---- Secrets and ConfigMaps ----------------------------------------------------------

    def apply_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> Changes:
        key = (namespace, name)
        if self.secrets.get(key) == data:
            return Changes()
        self.secrets[key] = dict(data)
        return self._rerender_users(namespace, self._secret_users.get(key, set()))

    def delete_secret(self, namespace: str, name: str) -> Changes:
        if self.secrets.pop((namespace, name), None) is None:
            return Changes()
        return self._rerender_users(namespace, self._secret_users.get((namespace, name), set()))

    def apply_configmap(self, namespace: str, name: str, data: Mapping[str, str]) -> Changes:
        key = (namespace, name)
        if self.configmaps.get(key) == data:
            return Changes()
        self.configmaps[key] = dict(data)
        return self._configmap_changed(namespace, name)

    def delete_configmap(self, namespace: str, name: str) -> Changes:
        if self.configmaps.pop((namespace, name), None) is None:
            return Changes()
        return self._configmap_changed(namespace, name)

    def _configmap_changed(self, namespace: str, name: str) -> Changes:
        changes = self._rerender_users(
            namespace, self._configmap_users.get((namespace, name), set())
        )
        for set_key, device_set in self.sets.items():
            if set_key[0] == namespace and name in config_configmaps(device_set.spec):
                changes.touch((namespace, member) for member in self.members(set_key))
        for device_name in self._by_namespace.get(namespace, ()):
            device = self.devices[(namespace, device_name)]
            if name in config_configmaps(device.spec):
                changes.touch([(namespace, device_name)])
        return changes

    def _rerender_users(self, namespace: str, workload_names: Iterable[str]) -> Changes:
        changes = Changes()
        for workload_name in list(workload_names):
            if (namespace, workload_name) in self.workloads:
                changes |= self._render((namespace, workload_name))
        return changes


def _counted(device: EdgeDevice) -> tuple[Any, ...]:
    """What the EdgeWorkload counts take from a device's status (workload_status): its applied
    version and its workloads' phases; and what rollouts read: a version waiting for its
    window, a failed version. Going online or offline, last-seen times and conditions change
    none of them, so they need no recount over the workload's targets."""
    status = device.status
    if status is None:
        return ()
    failed = status.failed_version
    return (
        status.applied_version,
        [(w.name, w.phase) for w in status.workloads or ()],
        # what a rollout reads of the device (rollouts.py; it sees going offline at its next
        # periodic evaluation)
        status.waiting_version,
        failed.version if failed is not None else "",
    )


def _render_inputs(workload: EdgeWorkload, pod_spec: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of an EdgeWorkload that its rendering and its targets depend on."""
    meta = workload.metadata
    return (workload.spec, meta.labels, meta.annotations, meta.deletion_timestamp, pod_spec)


def _desired_inputs(device: EdgeDevice) -> tuple[Any, ...]:
    """The parts of an EdgeDevice that a reconcile depends on: its spec, the certificate that
    secrets are sealed for, deletion, and the hardware that its labels follow (not the rest of
    the status, which the bridge rewrites often)."""
    status = device.status
    certificate = status.certificate if status is not None else None
    return (
        device.spec,
        certificate.serial if certificate is not None else "",
        device.metadata.deletion_timestamp,
        status.hardware if status is not None else None,
    )

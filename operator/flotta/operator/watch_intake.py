"""Watch events into the fleet caches, and the work they cause onto the queues."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from flotta import gc_freeze
from flotta.operator.context import Context
from flotta.operator.fleet_cache import Changes, Key
from flotta.operator.watching import WatchEvent
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet
from flotta.schemas.crd.workload import EdgeWorkload

logger = logging.getLogger(__name__)

KINDS = ("EdgeDevice", "EdgeDeviceSet", "EdgeWorkload", "Secret", "ConfigMap")


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


class Intake:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._synced: set[str] = set()

    def handle(self, event: WatchEvent) -> None:
        if event.type == "RELISTED":
            changes = self._relisted(event)
            self._synced.add(event.kind)
            if all(kind in self._synced for kind in KINDS) and not self._context.synced.is_set():
                # The initial caches live as long as the process: keep them out of the cyclic
                # garbage collector's full scans, which otherwise pause every loop.
                gc_freeze.apply(gc_freeze.GcAction.FULL)
                self._context.synced.set()
        elif event.type == "DELETED":
            changes = self._delete(event.kind, _key(event.obj))
        else:
            changes = self._apply(event.kind, event.obj)
        if event.kind == "ConfigMap" and changes:
            self._context.desired.invalidate_configurations()
        self._enqueue(changes)

    def _enqueue(self, changes: Changes) -> None:
        context = self._context
        devices = changes.devices - changes.content_only()
        for key, names in changes.rendered.items():
            devices.update((key[0], name) for name in context.rollouts.changed(key, names))
        context.reconcile.add_all(devices)
        context.workload_status.add_all(changes.workloads)
        context.set_status.add_all(changes.sets)
        for key in changes.workloads:
            entry = context.fleet.workloads.get(key)
            if entry is not None and entry.model.spec.rollout_policy is not None:
                context.rollout_kicks.add(key)
                context.reports_changed.set()

    def _relisted(self, event: WatchEvent) -> Changes:
        known = self._known_keys(event.kind)
        listed = {_key(obj) for obj in event.objects}
        changes = Changes()
        for key in known - listed:
            changes |= self._delete(event.kind, key)
        for obj in event.objects:
            changes |= self._apply(event.kind, obj)
        return changes

    def _known_keys(self, kind: str) -> set[Key]:
        fleet = self._context.fleet
        match kind:
            case "EdgeDevice":
                return set(fleet.devices)
            case "EdgeDeviceSet":
                return set(fleet.sets)
            case "EdgeWorkload":
                return set(fleet.workloads)
            case "Secret":
                return set(fleet.secrets)
            case _:
                return set(fleet.configmaps)

    def _apply(self, kind: str, obj: dict[str, Any]) -> Changes:
        fleet = self._context.fleet
        try:
            match kind:
                case "EdgeDevice":
                    return fleet.apply_device(EdgeDevice.model_validate(obj))
                case "EdgeDeviceSet":
                    return fleet.apply_set(EdgeDeviceSet.model_validate(obj))
                case "EdgeWorkload":
                    pod_spec = ((obj.get("spec") or {}).get("pod") or {}).get("spec") or {}
                    return fleet.apply_workload(EdgeWorkload.model_validate(obj), dict(pod_spec))
                case "Secret":
                    return fleet.apply_secret(*_key(obj), obj.get("data") or {})
                case _:
                    return fleet.apply_configmap(*_key(obj), obj.get("data") or {})
        except ValidationError as exc:
            self._context.metrics.errors.labels("invalid-object").inc()
            logger.warning("%s %s/%s ignored: %s", kind, *_key(obj), exc.error_count())
            return Changes()

    def _delete(self, kind: str, key: Key) -> Changes:
        fleet = self._context.fleet
        match kind:
            case "EdgeDevice":
                self._context.ledger.remove(key)
                return fleet.delete_device(key)
            case "EdgeDeviceSet":
                return fleet.delete_set(key)
            case "EdgeWorkload":
                return fleet.delete_workload(key)
            case "Secret":
                return fleet.delete_secret(*key)
            case _:
                return fleet.delete_configmap(*key)

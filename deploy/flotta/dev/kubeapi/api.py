"""The API's behaviour, apart from HTTP: create, read, update, patch, delete, list, watch."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from flotta.dev.kubeapi import applying, objects
from flotta.dev.kubeapi.errors import (
    AlreadyExistsError,
    BadRequestError,
    Cause,
    ConflictError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    PatchFailedError,
    UnsupportedMediaTypeError,
)
from flotta.dev.kubeapi.patches import STRATEGIC_MERGE_PATCH, PatchError, apply_patch
from flotta.dev.kubeapi.resources import (
    CRD_KEY,
    NAMESPACE_KEY,
    CrdError,
    Registry,
    ResourceType,
    types_from_crd,
)
from flotta.dev.kubeapi.selectors import FieldSelector, LabelSelector, field_getter
from flotta.dev.kubeapi.storage import Entry, Storage
from flotta.dev.kubeapi.watching import Filter, Watcher, WatchEvent, WatchHub

logger = logging.getLogger(__name__)


Warnings = list[str]  # messages for the response's Warning headers
ManagedFields = list[dict[str, Any]]  # metadata.managedFields entries


@dataclass(frozen=True)
class ListResult:
    items: list[Entry]
    resource_version: int
    continue_token: str
    remaining: int


@dataclass(frozen=True)
class WatchStart:
    """A registered watcher and the events it must be sent before its queue."""

    watcher: Watcher
    initial: list[tuple[str, WatchEvent]]


def _not_found(resource: ResourceType, name: str) -> NotFoundError:
    return NotFoundError(
        f'{resource.qualified} "{name}" not found',
        name=name,
        group=resource.group,
        kind=resource.plural,
    )


def _conflict(resource: ResourceType, name: str) -> ConflictError:
    return ConflictError(
        f'Operation cannot be fulfilled on {resource.qualified} "{name}":'
        " the object has been modified;"
        " please apply your changes to the latest version and try again",
        name=name,
        group=resource.group,
        kind=resource.plural,
    )


class Api:
    """Every operation the HTTP handlers expose, over one Storage and one WatchHub."""

    def __init__(
        self, storage: Storage, *, history_size: int = 10_000, queue_size: int = 10_000
    ) -> None:
        self.storage = storage
        self.registry = Registry()
        self.hub = WatchHub(
            start_version=storage.resource_version, history_size=history_size, queue_size=queue_size
        )
        for _, entry in storage.items(CRD_KEY):
            crd = entry.load()
            try:
                self.registry.install_crd(crd["metadata"]["name"], crd)
            except CrdError as exc:
                logger.error("stored CRD %s cannot be served: %s", crd["metadata"]["name"], exc)
        if storage.get(NAMESPACE_KEY, "", "default") is None:
            for name in ("default", "kube-system", "kube-public"):
                self.create(self._builtin("namespaces"), "", {"metadata": {"name": name}})

    def _builtin(self, plural: str) -> ResourceType:
        resource = next(
            (
                r
                for r in self.registry.all()
                if r.plural == plural and r.group in ("", "apiextensions.k8s.io")
            ),
            None,
        )
        if resource is None:
            raise LookupError(f"built-in resource {plural} is not registered")
        return resource

    # ---- reads -------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> Entry:
        entry = self.storage.get(resource.key, namespace, name)
        if entry is None:
            raise _not_found(resource, name)
        return entry

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        resource_version = self.storage.resource_version
        start: tuple[str, str] | None = None
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start = (str(token["start"][0]), str(token["start"][1]))
                resource_version = int(token["rv"])
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise BadRequestError(f"invalid continue token: {exc}") from exc
        pinned_name = fields.value_of("metadata.name")
        needs_object = any(
            r.field not in ("metadata.name", "metadata.namespace") for r in fields.requirements
        )
        selected: list[tuple[tuple[str, str], Entry]] = []
        for key, entry in self.storage.items(resource.key, namespace):
            if start is not None and key <= start:
                continue
            if pinned_name is not None and key[1] != pinned_name:
                continue
            if not labels.matches(entry.labels):
                continue
            if fields.requirements:
                source = (
                    entry.load()
                    if needs_object
                    else {"metadata": {"name": key[1], "namespace": key[0]}}
                )
                if not fields.matches(field_getter(source)):
                    continue
            selected.append((key, entry))
        if limit and len(selected) > limit:
            last = selected[limit - 1][0]
            token = base64.urlsafe_b64encode(
                json.dumps({"rv": resource_version, "start": list(last)}).encode()
            ).decode()
            return ListResult(
                [e for _, e in selected[:limit]], resource_version, token, len(selected) - limit
            )
        return ListResult([e for _, e in selected], resource_version, "", 0)

    def watch(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        resource_version: str,
    ) -> WatchStart:
        """Register a watcher; raises GoneError when ``resource_version`` left the window."""
        needs_object = any(
            r.field not in ("metadata.name", "metadata.namespace") for r in fields.requirements
        )
        selection = Filter(namespace, labels, fields, needs_object)
        initial: list[tuple[str, WatchEvent]] = []
        if resource_version in ("", "0"):
            for (item_namespace, name), entry in self.storage.items(resource.key, namespace):
                event = WatchEvent("ADDED", item_namespace, name, entry)
                if selection.matches(item_namespace, name, entry.labels, entry):
                    initial.append(("ADDED", event))
        else:
            try:
                version = int(resource_version)
            except ValueError as exc:
                raise BadRequestError(f"invalid resourceVersion {resource_version!r}") from exc
            oldest = self.hub.oldest_valid(resource.key)
            if version < oldest:
                raise GoneError(f"too old resource version: {version} ({oldest})")
            for event in self.hub.since(resource.key, version):
                event_type = selection.effective_type(event)
                if event_type is not None:
                    initial.append((event_type, event))
        return WatchStart(self.hub.add(resource.key, selection), initial)

    # ---- writes ------------------------------------------------------------------------

    def _require_namespace(self, resource: ResourceType, namespace: str, *, creating: bool) -> None:
        if not resource.namespaced:
            return
        entry = self.storage.get(NAMESPACE_KEY, "", namespace)
        if entry is None:
            message = f'namespaces "{namespace}" not found'
            raise NotFoundError(message, name=namespace, kind="namespaces")
        if creating and entry.load()["metadata"].get("deletionTimestamp"):
            raise ForbiddenError(
                f'{resource.qualified} "" is forbidden: unable to create new content in namespace'
                f" {namespace} because it is being terminated"
            )

    def _write(
        self,
        resource: ResourceType,
        namespace: str,
        obj: dict[str, Any],
        event_type: str,
        previous: Entry | None,
        *,
        dry_run: bool = False,
    ) -> Entry:
        if dry_run:  # answered as if written: the stored resourceVersion, no event
            meta = obj["metadata"]
            if previous is None:
                meta.pop("resourceVersion", None)
            else:
                meta["resourceVersion"] = str(previous.resource_version)
            return Entry.unstored(obj)
        name = obj["metadata"]["name"]
        entry = self.storage.put(resource.key, namespace, name, obj)
        self.hub.publish(
            resource.key,
            WatchEvent(
                event_type,
                namespace,
                name,
                entry,
                previous.labels if previous is not None else None,
            ),
        )
        return entry

    def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: Any,
        *,
        strict: bool = False,
        warnings: Warnings | None = None,
        dry_run: bool = False,
        manager: str = "",
        managed: ManagedFields | None = None,
    ) -> Entry:
        """Create; ``manager`` gets an Update entry in managedFields, unless an apply
        computed them (``managed``)."""
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        self._require_namespace(resource, namespace, creating=True)
        obj = objects.prepare_create(resource, body, namespace)
        name = obj["metadata"]["name"]
        if resource.key == NAMESPACE_KEY:
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
        _warn(warnings, objects.conform(resource, obj, strict=strict))
        if managed is None and manager:
            managed = applying.record_update(
                None, obj, [], resource, manager=manager, subresource="", moment=objects.now()
            )
        if managed:
            obj["metadata"]["managedFields"] = managed
        if resource.key == CRD_KEY:
            self._check_crd(obj)
        if self.storage.get(resource.key, namespace, name) is not None:
            raise AlreadyExistsError(
                f'{resource.qualified} "{name}" already exists',
                name=name,
                group=resource.group,
                kind=resource.plural,
            )
        if resource.key == CRD_KEY and not dry_run:
            self.registry.install_crd(name, obj)
        return self._write(resource, namespace, obj, "ADDED", None, dry_run=dry_run)

    def _check_crd(self, crd: dict[str, Any]) -> None:
        """Refuse (422) a CRD this server cannot serve; stamp its status."""
        name = crd["metadata"]["name"]
        spec = crd.get("spec") or {}
        try:
            expected = f"{spec['names']['plural']}.{spec['group']}"
            if name != expected:
                raise CrdError(
                    f'metadata.name must be spec.names.plural+"."+spec.group ({expected})'
                )
            types_from_crd(crd)
        except (CrdError, KeyError, TypeError, ValueError) as exc:
            raise objects.invalid(
                self._builtin("customresourcedefinitions"),
                name,
                [Cause("FieldValueInvalid", f"Invalid value: {exc}", "spec")],
            ) from exc
        crd["status"] = objects.crd_status(spec, objects.now())

    def replace(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        strict: bool = False,
        warnings: Warnings | None = None,
        dry_run: bool = False,
        manager: str = "",
    ) -> Entry:
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        self._require_namespace(resource, namespace, creating=False)
        previous = self.get(resource, namespace, name)
        old = previous.load()
        given_meta = body.get("metadata")
        meta: dict[str, Any] = given_meta if isinstance(given_meta, dict) else {}
        if meta.get("name") not in (None, name):
            raise BadRequestError(
                f"the name of the object ({meta.get('name')})"
                f" does not match the name on the URL ({name})"
            )
        given_version = meta.get("resourceVersion")
        if given_version:
            if str(given_version) != old["metadata"]["resourceVersion"]:
                raise _conflict(resource, name)
        elif resource.schema is not None:
            raise objects.invalid(
                resource,
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        "Invalid value: 0: must be specified for an update",
                        "metadata.resourceVersion",
                    )
                ],
            )
        return self._update(
            resource,
            namespace,
            previous,
            old,
            body,
            subresource=subresource,
            strict=strict,
            warnings=warnings,
            dry_run=dry_run,
            manager=manager,
        )

    def _update(
        self,
        resource: ResourceType,
        namespace: str,
        previous: Entry,
        old: dict[str, Any],
        body: dict[str, Any],
        *,
        subresource: str,
        strict: bool,
        warnings: Warnings | None,
        dry_run: bool,
        manager: str,
        managed: ManagedFields | None = None,
    ) -> Entry:
        if subresource and not (subresource == "status" and resource.status_subresource):
            raise NotFoundError(f"the server could not find the requested resource ({subresource})")
        given = (
            body["metadata"].get("managedFields")
            if isinstance(body.get("metadata"), dict)
            else None
        )
        new = objects.prepare_update(resource, old, body, subresource=subresource)
        stored = previous.load()  # untouched by conform, which may edit values shared with old
        _warn(warnings, objects.conform(resource, new, strict=strict, old=stored))
        if resource.key == CRD_KEY and subresource != "status":
            self._check_crd(new)
        if managed is None:
            managed = stored["metadata"].get("managedFields") or []
            if isinstance(given, list) and given != managed:
                managed = given  # the client replaced them (as kubectl's apply migration does)
            if manager:
                managed = applying.record_update(
                    stored,
                    new,
                    managed,
                    resource,
                    manager=manager,
                    subresource=subresource,
                    moment=objects.now(),
                )
        if managed:
            new["metadata"]["managedFields"] = managed
        else:
            new["metadata"].pop("managedFields", None)
        objects.bump_generation(resource, stored, new)
        if objects.same_content(stored, new):
            return previous
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._remove(resource, namespace, new, dry_run=dry_run)
        if resource.key == CRD_KEY and subresource != "status" and not dry_run:
            self.registry.install_crd(new["metadata"]["name"], new)
        return self._write(resource, namespace, new, "MODIFIED", previous, dry_run=dry_run)

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
        strict: bool = False,
        warnings: Warnings | None = None,
        dry_run: bool = False,
        manager: str = "",
    ) -> Entry:
        if (
            content_type == STRATEGIC_MERGE_PATCH
            and resource.schema is not None
            and resource.key != CRD_KEY
        ):
            raise UnsupportedMediaTypeError(
                "the body of the request was in an unknown format - accepted media types include:"
                " application/json-patch+json, application/merge-patch+json,"
                " application/apply-patch+yaml"
            )
        self._require_namespace(resource, namespace, creating=False)
        previous = self.get(resource, namespace, name)
        old = previous.load()
        try:
            new = apply_patch(old, patch, content_type)
        except PatchError as exc:
            raise PatchFailedError(str(exc)) from exc
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise PatchFailedError("the patched object is not a Kubernetes object")
        given_version = new["metadata"].get("resourceVersion")
        if given_version and str(given_version) != old["metadata"]["resourceVersion"]:
            raise _conflict(resource, name)
        if new["metadata"].get("name") != name:
            raise BadRequestError(
                f"the name of the object ({new['metadata'].get('name')})"
                f" does not match the name on the URL ({name})"
            )
        return self._update(
            resource,
            namespace,
            previous,
            old,
            new,
            subresource=subresource,
            strict=strict,
            warnings=warnings,
            dry_run=dry_run,
            manager=manager,
        )

    def apply(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        config: Any,
        *,
        manager: str,
        force: bool = False,
        subresource: str = "",
        strict: bool = False,
        warnings: Warnings | None = None,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """Server-side apply; returns the object and whether the apply created it."""
        if not isinstance(config, dict) or not isinstance(config.get("metadata", {}), dict):
            raise BadRequestError("the applied configuration must be an object")
        if config.get("apiVersion") != resource.api_version or config.get("kind") != resource.kind:
            raise BadRequestError(
                f"the API version and kind in the data ({config.get('apiVersion')},"
                f" {config.get('kind')}) do not match the expected ones"
                f" ({resource.api_version}, {resource.kind})"
            )
        if config.get("metadata", {}).get("name") not in (None, name):
            raise BadRequestError(
                f"the name of the object ({config['metadata']['name']})"
                f" does not match the name on the URL ({name})"
            )
        previous = self.storage.get(resource.key, namespace, name)
        live = previous.load() if previous is not None else None
        if live is None and subresource:
            raise _not_found(resource, name)
        given_version = config.get("metadata", {}).get("resourceVersion")
        if given_version and (
            live is None or str(given_version) != live["metadata"]["resourceVersion"]
        ):
            raise _conflict(resource, name)
        result = applying.apply(
            live,
            config,
            resource,
            manager=manager,
            force=force,
            subresource=subresource,
            moment=objects.now(),
        )
        managed = result.obj["metadata"].pop("managedFields")
        if previous is None or live is None:
            result.obj["metadata"]["name"] = name
            entry = self.create(
                resource,
                namespace,
                result.obj,
                strict=strict,
                warnings=warnings,
                dry_run=dry_run,
                managed=managed,
            )
            return entry, True
        self._require_namespace(resource, namespace, creating=False)
        entry = self._update(
            resource,
            namespace,
            previous,
            live,
            result.obj,
            subresource=subresource,
            strict=strict,
            warnings=warnings,
            dry_run=dry_run,
            manager=manager,
            managed=managed,
        )
        return entry, False

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        *,
        precondition_uid: str = "",
        precondition_version: str = "",
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """Delete or mark for deletion; returns the last state and whether it is gone."""
        self._require_namespace(resource, namespace, creating=False)
        previous = self.get(resource, namespace, name)
        obj = previous.load()
        meta = obj["metadata"]
        if precondition_uid and precondition_uid != meta["uid"]:
            raise ConflictError(
                f"Precondition failed: UID in precondition: {precondition_uid},"
                f" UID in object meta: {meta['uid']}",
                name=name,
                group=resource.group,
                kind=resource.plural,
            )
        if precondition_version and precondition_version != meta["resourceVersion"]:
            raise _conflict(resource, name)
        if resource.key == NAMESPACE_KEY:
            return self._delete_namespace(resource, name, previous, obj, dry_run=dry_run)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return previous, False
            meta["deletionTimestamp"] = objects.now()
            meta["deletionGracePeriodSeconds"] = 0
            written = self._write(resource, namespace, obj, "MODIFIED", previous, dry_run=dry_run)
            return written, False
        return self._remove(resource, namespace, obj, dry_run=dry_run), True

    def _delete_namespace(
        self,
        resource: ResourceType,
        name: str,
        previous: Entry,
        obj: dict[str, Any],
        *,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        if not obj["metadata"].get("deletionTimestamp"):
            obj["metadata"]["deletionTimestamp"] = objects.now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            obj["status"] = {"phase": "Terminating"}
            previous = self._write(resource, "", obj, "MODIFIED", previous, dry_run=dry_run)
        if dry_run:  # its contents would go, and the namespace after them
            return previous, False
        for collection, item_name in self.storage.namespaced_in(name):
            item_type = self._type_for(collection)
            entry = self.storage.get(collection, name, item_name)
            if (
                item_type is not None
                and entry is not None
                and not entry.load()["metadata"].get("deletionTimestamp")
            ):
                self.delete(item_type, name, item_name)
        return self._finish_namespace(name) or (previous, False)

    def _finish_namespace(self, namespace: str) -> tuple[Entry, bool] | None:
        entry = self.storage.get(NAMESPACE_KEY, "", namespace)
        if entry is None:
            return None
        obj = entry.load()
        if not obj["metadata"].get("deletionTimestamp") or self.storage.namespaced_in(namespace):
            return None
        return self._remove(self._builtin("namespaces"), "", obj), True

    def _type_for(self, collection: str) -> ResourceType | None:
        return next((t for t in self.registry.all() if t.key == collection), None)

    def _remove(
        self, resource: ResourceType, namespace: str, obj: dict[str, Any], *, dry_run: bool = False
    ) -> Entry:
        if dry_run:
            return Entry.unstored(obj)
        name = obj["metadata"]["name"]
        entry = self.storage.delete(resource.key, namespace, name, obj)
        self.hub.publish(resource.key, WatchEvent("DELETED", namespace, name, entry))
        if resource.key == CRD_KEY:
            self._remove_crd(name)
        self._collect_dependents(obj["metadata"]["uid"])
        if namespace:
            self._finish_namespace(namespace)
        return entry

    def _remove_crd(self, name: str) -> None:
        types = self.registry.remove_crd(name)
        if not types:
            return
        collection = types[0].key
        for (item_namespace, _), entry in self.storage.items(collection):
            self._remove(types[0], item_namespace, entry.load())
        self.hub.drop_collection(collection)

    def _collect_dependents(self, uid: str) -> None:
        """Garbage collection: dependents whose only owner was ``uid`` are deleted."""
        for collection, item_namespace, item_name in self.storage.dependents(uid):
            entry = self.storage.get(collection, item_namespace, item_name)
            item_type = self._type_for(collection)
            if entry is None or item_type is None:
                continue
            dependent = entry.load()
            owners = dependent["metadata"].get("ownerReferences") or []
            remaining = [o for o in owners if o.get("uid") != uid]
            if remaining:
                dependent["metadata"]["ownerReferences"] = remaining
                self._write(item_type, item_namespace, dependent, "MODIFIED", entry)
            else:
                self.delete(item_type, item_namespace, item_name)


def _warn(warnings: list[str] | None, pruned: list[str]) -> None:
    if warnings is not None:
        warnings.extend(f'unknown field "{path}"' for path in pruned)

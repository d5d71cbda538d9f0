"""Pure rules for object metadata: what create, update and status updates may change."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from flotta.dev.kubeapi import rbac, rbac_validation
from flotta.dev.kubeapi.cel import ABSENT
from flotta.dev.kubeapi.errors import BadRequestError, Cause, InvalidError
from flotta.dev.kubeapi.resources import ResourceType
from flotta.dev.kubeapi.schema import apply_defaults, format_causes, prune, validate

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used"
    " for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and"
    " must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex"
    " used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
# fields the server owns; a client's values are ignored or refused
_SYSTEM_FIELDS = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def invalid(resource: ResourceType, name: str, causes: list[Cause]) -> InvalidError:
    return InvalidError(
        f'{resource.kind_qualified} "{name}" is invalid: {format_causes(causes)}',
        name=name,
        group=resource.group,
        kind=resource.kind,
        causes=tuple(causes),
    )


def _metadata_causes(resource: ResourceType, meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    name = meta.get("name", "")
    if resource.plural == "namespaces":
        if len(name) > 63 or not _LABEL.match(name):
            causes.append(
                Cause(
                    "FieldValueInvalid", f'Invalid value: "{name}": {_LABEL_MSG}', "metadata.name"
                )
            )
    elif resource.group == rbac.GROUP:  # RBAC names are path segments (system:discovery)
        if name in ("", ".", "..") or "/" in name or "%" in name:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: \"{name}\": may not be '.' or '..' and may not contain"
                    " '/' or '%'",
                    "metadata.name",
                )
            )
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        causes.append(
            Cause(
                "FieldValueInvalid", f'Invalid value: "{name}": {_SUBDOMAIN_MSG}', "metadata.name"
            )
        )
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: must be a map of strings",
                    f"metadata.{field}",
                )
            )
            continue
        for key, value in values.items():
            prefix, _, local = key.rpartition("/")
            if (
                not local
                or len(local) > 63
                or not _QUALIFIED.match(local)
                or (prefix and not _SUBDOMAIN.match(prefix))
            ):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{key}": name part must consist of alphanumeric'
                        " characters, '-', '_' or '.'",
                        f"metadata.{field}",
                    )
                )
            elif field == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{value}": a valid label must be an empty string or'
                        " consist of alphanumeric characters, '-', '_' or '.'",
                        "metadata.labels",
                    )
                )
    finalizers = meta.get("finalizers")
    if finalizers is not None and not (
        isinstance(finalizers, list) and all(isinstance(f, str) for f in finalizers)
    ):
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must be a list of strings",
                "metadata.finalizers",
            )
        )
    owners = meta.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list):
            causes.append(
                Cause(
                    "FieldValueInvalid", "Invalid value: must be a list", "metadata.ownerReferences"
                )
            )
        else:
            for index, owner in enumerate(owners):
                for key in ("apiVersion", "kind", "name", "uid"):
                    if not isinstance(owner, dict) or not owner.get(key):
                        causes.append(
                            Cause(
                                "FieldValueRequired",
                                "Required value",
                                f"metadata.ownerReferences[{index}].{key}",
                            )
                        )
    return causes


def _string_map(obj: dict[str, Any], field: str, causes: list[Cause]) -> dict[str, str]:
    value = obj.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        causes.append(Cause("FieldValueInvalid", "Invalid value: must be a map of strings", field))
        return {}
    return value


def _normalize_secret(obj: dict[str, Any], causes: list[Cause]) -> None:
    string_data = _string_map(obj, "stringData", causes)
    obj.pop("stringData", None)
    data = dict(_string_map(obj, "data", causes))
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": illegal base64 data',
                    f"data[{key}]",
                )
            )
    if data:
        obj["data"] = data
    obj.setdefault("type", "Opaque")


def _check_config_map(obj: dict[str, Any], causes: list[Cause]) -> None:
    _string_map(obj, "data", causes)
    _string_map(obj, "binaryData", causes)


def conform(
    resource: ResourceType,
    obj: dict[str, Any],
    *,
    strict: bool,
    old: dict[str, Any] | None = None,
) -> list[str]:
    """Prune, default and validate ``obj`` in place; return pruned field paths.

    ``old`` is the stored object an update replaces: transition rules (``oldSelf``) run
    against it.

    Raises ``InvalidError`` (422), or ``BadRequestError`` for unknown fields when ``strict``.
    """
    causes = _metadata_causes(resource, obj["metadata"])
    pruned: list[str] = []
    if resource.schema is not None:
        pruned = prune(obj, resource.schema)
        if pruned and strict:
            fields = ", ".join(f'unknown field "{path}"' for path in pruned)
            raise BadRequestError(f"strict decoding error: {fields}")
        apply_defaults(obj, resource.schema)
        causes += validate(obj, resource.schema, old=ABSENT if old is None else old)
    if resource.plural == "secrets" and not resource.group:
        _normalize_secret(obj, causes)
    if resource.plural == "configmaps" and not resource.group:
        _check_config_map(obj, causes)
    if resource.group == rbac.GROUP:
        rbac_validation.default(resource.kind, obj)
        causes += rbac_validation.validate(resource.kind, obj, old)
    if causes:
        raise invalid(resource, obj["metadata"].get("name", ""), causes)
    return pruned


def prepare_create(resource: ResourceType, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Stamp server-owned metadata on a new object."""
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequestError("metadata must be an object")
    if not meta.get("name"):
        prefix = meta.get("generateName")
        if not prefix:
            raise invalid(
                resource,
                "",
                [
                    Cause(
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                        "metadata.name",
                    )
                ],
            )
        meta["name"] = prefix + "".join(
            secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
        )
    if resource.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise BadRequestError(
                "the namespace of the provided object does not match the namespace sent"
                " on the request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    for field in (*_SYSTEM_FIELDS, "resourceVersion", "managedFields", "selfLink"):
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    if resource.schema is not None or resource.status_subresource:
        meta["generation"] = 1
    if resource.status_subresource and resource.plural != "namespaces":
        obj.pop("status", None)
    obj["apiVersion"] = resource.api_version
    obj["kind"] = resource.kind
    return obj


def _spec_part(obj: dict[str, Any], status_subresource: bool) -> dict[str, Any]:
    ignored = {"metadata", "status"} if status_subresource else {"metadata"}
    return {key: value for key, value in obj.items() if key not in ignored}


def prepare_update(
    resource: ResourceType, old: dict[str, Any], new: dict[str, Any], *, subresource: str
) -> dict[str, Any]:
    """Merge ``new`` onto ``old`` by the rules of the main endpoint or ``/status``.

    The result may share nested values with both inputs (the caller owns them).
    """
    if not isinstance(new.get("metadata"), dict):
        raise BadRequestError("metadata must be an object")
    old_meta = old["metadata"]
    if subresource == "status":
        result = dict(old, metadata=dict(old_meta))
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        return result
    result = dict(new, metadata=dict(new["metadata"]))
    meta = result["metadata"]
    for field in (*_SYSTEM_FIELDS, "name", "namespace"):
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta.pop("managedFields", None)
    result["apiVersion"] = resource.api_version
    result["kind"] = resource.kind
    if resource.status_subresource:
        if "status" in old:
            result["status"] = old["status"]
        else:
            result.pop("status", None)
    if old_meta.get("deletionTimestamp"):
        added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
        if added:
            raise invalid(
                resource,
                old_meta["name"],
                [
                    Cause(
                        "FieldValueForbidden",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                        "metadata.finalizers",
                    )
                ],
            )
    return result


def bump_generation(resource: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Generation counts spec changes (every non-metadata change without a status subresource)."""
    if "generation" not in old["metadata"]:
        return
    if _spec_part(old, resource.status_subresource) != _spec_part(new, resource.status_subresource):
        new["metadata"]["generation"] = int(old["metadata"]["generation"]) + 1


def same_content(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when an update changes nothing but the resourceVersion it carried."""
    old_copy = dict(
        old, metadata={k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
    )
    new_copy = dict(
        new, metadata={k: v for k, v in new["metadata"].items() if k != "resourceVersion"}
    )
    return old_copy == new_copy


def crd_status(spec: dict[str, Any], moment: str) -> dict[str, Any]:
    """The status of a CRD this server serves: names accepted and established at once."""
    conditions = (
        ("NamesAccepted", "NoConflicts", "no conflicts found"),
        ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    )
    return {
        "acceptedNames": dict(spec.get("names") or {}),
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": moment,
            }
            for kind, reason, message in conditions
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or () if v.get("storage")],
    }

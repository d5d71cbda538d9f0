"""Structural schemas from a CRD's ``openAPIV3Schema``: pruning, defaulting, validation.

Done in Kubernetes' order: unknown fields are pruned (unless
``x-kubernetes-preserve-unknown-fields``), ``default:`` values are filled in where a field is
absent, then the object is validated. Validation errors are ``Cause`` records with field
paths and messages worded like kube-apiserver's. ``x-kubernetes-validations`` rules are
evaluated by ``cel.py`` (cel-python); rules it cannot evaluate are skipped. Transition rules
(``oldSelf``) run on updates where the old value correlates: through object properties and
map keys, and list items only in ``x-kubernetes-list-type: map`` lists (by their map keys),
as in Kubernetes.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from typing import Any

from flotta.dev.kubeapi.cel import ABSENT, check, is_transition_rule
from flotta.dev.kubeapi.errors import Cause

Schema = dict[str, Any]
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _render(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def prune(obj: Any, schema: Schema, path: str = "", *, root: bool = True) -> list[str]:
    """Remove fields the schema does not know, in place; return their paths."""
    removed: list[str] = []
    if isinstance(obj, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(obj):
            if root and key in _ROOT_KEEP:
                continue
            if key in properties:
                removed += prune(obj[key], properties[key], _join(path, key), root=False)
            elif isinstance(additional, dict):
                removed += prune(obj[key], additional, _join(path, key), root=False)
            elif not preserve and additional is not True:
                del obj[key]
                removed.append(_join(path, key))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            removed += prune(item, schema["items"], f"{path}[{index}]", root=False)
    return removed


def apply_defaults(obj: Any, schema: Schema) -> None:
    """Fill in ``default:`` values of absent fields, in place, recursively."""
    if isinstance(obj, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        for key, child in properties.items():
            if "default" in child and (
                key not in obj or (obj[key] is None and not child.get("nullable"))
            ):
                obj[key] = copy.deepcopy(child["default"])
            if key in obj:
                apply_defaults(obj[key], child)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, value in obj.items():
                if key not in properties:
                    apply_defaults(value, additional)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])


def _type_ok(value: Any, schema: Schema) -> bool:
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    if expected is None:
        return True
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _date_time_ok(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate(obj: Any, schema: Schema, path: str = "", old: Any = ABSENT) -> list[Cause]:
    """Validate ``obj`` against a structural schema; return every violation found.

    ``old`` is the stored object of an update (for transition rules), ``ABSENT`` on create.
    """
    causes: list[Cause] = []
    _validate(obj, schema, path, causes, old)
    return causes


def _invalid(causes: list[Cause], path: str, value: Any, detail: str) -> None:
    causes.append(Cause("FieldValueInvalid", f"Invalid value: {_render(value)}: {detail}", path))


def _validate(
    value: Any, schema: Schema, path: str, causes: list[Cause], old: Any = ABSENT
) -> None:
    where = path or "body"
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            _invalid(
                causes, path, value, f'{where} in body must be of type {schema["type"]}: "null"'
            )
        return
    if not _type_ok(value, schema):
        kind = type(value).__name__
        names = {
            "dict": "object",
            "list": "array",
            "str": "string",
            "bool": "boolean",
            "float": "number",
            "int": "integer",
        }
        _invalid(
            causes,
            path,
            value,
            f'{where} in body must be of type {schema.get("type")}: "{names.get(kind, kind)}"',
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_render(option) for option in schema["enum"])
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {_render(value)}: supported values: {supported}",
                path,
            )
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, causes)
    elif isinstance(value, str):
        _validate_string(value, schema, path, causes)
    elif isinstance(value, list):
        _validate_array(value, schema, path, causes, old)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, causes, old)
    _validate_combinators(value, schema, path, causes, old)
    for rule in schema.get("x-kubernetes-validations") or ():
        _validate_rule(value, rule, path, causes, old)


def _validate_rule(value: Any, rule: Any, path: str, causes: list[Cause], old: Any) -> None:
    if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
        return
    if rule.get("optionalOldSelf") and is_transition_rule(rule["rule"]):
        return  # oldSelf as a CEL optional: cel-python has no optional types
    if check(rule["rule"], value, old) is not False:
        return
    names = {dict: "object", list: "array", str: "string", bool: "boolean"}
    shown = names.get(type(value), "number")
    message = rule.get("message") or f"failed rule: {rule['rule']}"
    field = _join(path, rule["fieldPath"].lstrip(".")) if rule.get("fieldPath") else path
    causes.append(Cause("FieldValueInvalid", f'Invalid value: "{shown}": {message}', field))


def _validate_number(value: float, schema: Schema, path: str, causes: list[Cause]) -> None:
    where = path or "body"
    if "minimum" in schema:
        if schema.get("exclusiveMinimum") is True and value <= schema["minimum"]:
            _invalid(
                causes, path, value, f"{where} in body should be greater than {schema['minimum']}"
            )
        elif value < schema["minimum"]:
            _invalid(
                causes,
                path,
                value,
                f"{where} in body should be greater than or equal to {schema['minimum']}",
            )
    if "maximum" in schema:
        if schema.get("exclusiveMaximum") is True and value >= schema["maximum"]:
            _invalid(
                causes, path, value, f"{where} in body should be less than {schema['maximum']}"
            )
        elif value > schema["maximum"]:
            _invalid(
                causes,
                path,
                value,
                f"{where} in body should be less than or equal to {schema['maximum']}",
            )
    multiple = schema.get("multipleOf")
    if multiple and value % multiple:
        _invalid(causes, path, value, f"{where} in body should be a multiple of {multiple}")


def _validate_string(value: str, schema: Schema, path: str, causes: list[Cause]) -> None:
    where = path or "body"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(
            Cause(
                "FieldValueTooLong",
                f"Too long: may not be more than {schema['maxLength']} bytes",
                path,
            )
        )
    if "minLength" in schema and len(value) < schema["minLength"]:
        _invalid(
            causes,
            path,
            value,
            f"{where} in body should be at least {schema['minLength']} chars long",
        )
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, value):
        _invalid(causes, path, value, f"{where} in body should match '{pattern}'")
    if schema.get("format") == "date-time" and not _date_time_ok(value):
        _invalid(
            causes, path, value, f"{where} in body must be of type date-time: {_render(value)}"
        )


def _old_item(item: Any, old: Any, schema: Schema) -> Any:
    """The old item a ``map`` list item correlates with (same map keys), else ``ABSENT``."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(item, dict):
        return ABSENT
    if not isinstance(old, list):
        return ABSENT
    wanted = [item.get(key) for key in keys]
    for candidate in old:
        if isinstance(candidate, dict) and [candidate.get(key) for key in keys] == wanted:
            return candidate
    return ABSENT


def _validate_array(
    value: list[Any], schema: Schema, path: str, causes: list[Cause], old: Any
) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(
            Cause(
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                path,
            )
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        _invalid(
            causes,
            path,
            value,
            f"{path or 'body'} in body should have at least {schema['minItems']} items",
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", causes, _old_item(item, old, schema))
    if schema.get("x-kubernetes-list-type") == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                causes.append(
                    Cause(
                        "FieldValueDuplicate",
                        f"Duplicate value: {_render(item)}",
                        f"{path}[{index}]",
                    )
                )
            seen.append(item)


def _validate_object(
    value: dict[str, Any], schema: Schema, path: str, causes: list[Cause], old: Any
) -> None:
    for key in schema.get("required") or ():
        if key not in value:
            causes.append(Cause("FieldValueRequired", "Required value", _join(path, key)))
    properties: dict[str, Schema] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, child in value.items():
        if not path and key in _ROOT_KEEP:
            continue
        old_child = old.get(key, ABSENT) if isinstance(old, dict) else ABSENT
        if key in properties:
            _validate(child, properties[key], _join(path, key), causes, old_child)
        elif isinstance(additional, dict):
            _validate(child, additional, _join(path, key), causes, old_child)
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        causes.append(
            Cause(
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                path,
            )
        )


def _validate_combinators(
    value: Any, schema: Schema, path: str, causes: list[Cause], old: Any
) -> None:
    where = path or "body"
    for sub in schema.get("allOf") or ():
        _validate(value, sub, path, causes, old)
    any_of = schema.get("anyOf")
    if any_of and all(validate(value, sub, path, old) for sub in any_of):
        _invalid(causes, path, value, f"{where} in body must validate at least one schema (anyOf)")
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if not validate(value, sub, path, old)) != 1:
        _invalid(
            causes, path, value, f"{where} in body must validate one and only one schema (oneOf)"
        )
    if isinstance(schema.get("not"), dict) and not validate(value, schema["not"], path, old):
        _invalid(causes, path, value, f"{where} in body must not validate the schema (not)")


def format_causes(causes: list[Cause]) -> str:
    """Join causes the way kube-apiserver words an Invalid message."""
    parts = [
        f"{cause.field}: {cause.message}" if cause.field else cause.message for cause in causes
    ]
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"

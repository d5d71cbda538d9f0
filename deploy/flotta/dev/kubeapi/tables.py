"""``meta.k8s.io/v1`` Table output (what kubectl get prints), from printer columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flotta.dev.kubeapi.json_paths import JsonPathError, find
from flotta.dev.kubeapi.resources import PrinterColumn, ResourceType

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}


def human_duration(seconds: float) -> str:
    """Age as kubectl shows it (``45s``, ``5m30s``, ``3h``, ``2d``)."""
    seconds = max(int(seconds), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _cell(column: PrinterColumn, obj: dict[str, Any], now: datetime) -> Any:
    if column.value is not None:
        return column.value(obj)
    try:
        values = find(obj, column.json_path)
    except JsonPathError:
        return None
    if not values or values[0] is None:
        return None
    value = values[0]
    if column.type == "date":
        if not isinstance(value, str):
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return human_duration((now - moment).total_seconds())
    if column.type == "integer":
        return value if isinstance(value, int) else None
    if column.type == "number":
        return value if isinstance(value, (int, float)) else None
    if column.type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if len(values) > 1:
        return ",".join(str(v) for v in values)
    return str(value) if not isinstance(value, bool) else str(value).lower()


def column_definitions(resource: ResourceType) -> list[dict[str, Any]]:
    definitions = [dict(_NAME_COLUMN)]
    for column in resource.printer_columns:
        definitions.append(
            {
                "name": column.name,
                "type": column.type,
                "format": column.format,
                "description": column.description,
                "priority": column.priority,
            }
        )
    return definitions


def row(
    resource: ResourceType, obj: dict[str, Any], include_object: str, now: datetime | None = None
) -> dict[str, Any]:
    moment = now or datetime.now(UTC)
    cells: list[Any] = [obj.get("metadata", {}).get("name", "")]
    cells += [_cell(column, obj, moment) for column in resource.printer_columns]
    result: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        result["object"] = obj
    elif include_object != "None":
        result["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return result


def table(
    resource: ResourceType,
    objects: list[dict[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str = "",
    with_columns: bool = True,
) -> dict[str, Any]:
    moment = datetime.now(UTC)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(resource) if with_columns else [],
        "rows": [row(resource, obj, include_object, moment) for obj in objects],
    }

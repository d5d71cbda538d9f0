"""Hardware inventory from heartbeats: a full report replaces, a delta replaces only the
sections it carries."""

from __future__ import annotations

from typing import Any

from flotta.schemas.codec import content_document
from flotta.schemas.wire.status import HardwareReport


def merge_hardware(recorded: dict[str, Any] | None, report: HardwareReport) -> dict[str, Any]:
    """The inventory (API form, camelCase) after ``report``."""
    reported: dict[str, Any] = content_document(report.hardware)
    if report.scope == "full" or recorded is None:
        return reported
    merged = dict(recorded)
    merged.update(reported)
    return merged

"""The labels the operator keeps on an EdgeDevice: ``workload/<name>=true`` for every
workload that targets it. Pure: returns the merge patch of ``metadata.labels``, or None."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flotta.schemas.crd.common import WORKLOAD_LABEL_PREFIX

# Label keys are at most 63 characters after the prefix; longer workload names get no label.
_MAX_NAME = 63


def workload_label(name: str) -> str:
    return f"{WORKLOAD_LABEL_PREFIX}{name}"


def workload_labels_patch(
    current: Mapping[str, str], workloads: Iterable[str]
) -> dict[str, str | None] | None:
    wanted = {workload_label(name) for name in workloads if len(name) <= _MAX_NAME}
    have = {key for key in current if key.startswith(WORKLOAD_LABEL_PREFIX)}
    patch: dict[str, str | None] = {key: None for key in have - wanted}
    patch.update({key: "true" for key in wanted if current.get(key) != "true"})
    return patch or None


def labels_patch(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str] | None:
    """Set labels that differ (hardware labels); never removes any."""
    patch = {key: value for key, value in wanted.items() if current.get(key) != value}
    return patch or None

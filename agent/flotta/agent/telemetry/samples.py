"""Measurements before they are stamped and buffered, and the allow-list filter: pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from flotta.schemas.codec import checked
from flotta.schemas.errors import PayloadError
from flotta.schemas.wire import MetricSample


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    timestamp_ms: int | None = None


class AllowList:
    """Metric names to keep: ``None`` keeps every name; entries are exact names or shell
    patterns (``node_memory_*``)."""

    def __init__(self, entries: Sequence[str] | None) -> None:
        self._all = entries is None
        self._exact = frozenset(e for e in entries or () if not _is_pattern(e))
        self._patterns = tuple(e for e in entries or () if _is_pattern(e))

    def allows(self, name: str) -> bool:
        if self._all or name in self._exact:
            return True
        return any(fnmatchcase(name, pattern) for pattern in self._patterns)


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def stamp(
    measurements: Iterable[Measurement], *, timestamp_ms: int, allow: AllowList
) -> tuple[list[MetricSample], int]:
    """The allowed measurements as wire samples, and how many were skipped because their
    value is not finite (JSON cannot carry NaN or infinities) or they break the sample
    limits (name, label count and length)."""
    samples: list[MetricSample] = []
    skipped = 0
    for measurement in measurements:
        if not allow.allows(measurement.name):
            continue
        if not math.isfinite(measurement.value):
            skipped += 1
            continue
        try:
            samples.append(
                checked(
                    MetricSample(
                        name=measurement.name,
                        labels=dict(measurement.labels),
                        value=measurement.value,
                        timestamp_ms=measurement.timestamp_ms or timestamp_ms,
                    )
                )
            )
        except PayloadError:
            skipped += 1
    return samples, skipped

"""A bounded in-memory stage in front of the buffer, so a stream of log lines becomes one
transaction per flush instead of one write per line. Each record may move a cursor
(workload -> position in its log) that is stored in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

Cursor = tuple[str, int]  # the last log time taken (ISO 8601), lines taken at that time


@dataclass(slots=True)
class Staged:
    records: list[bytes] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)
    """The workload of each record, in the order of ``records``."""
    dropped: int = 0
    cursors: dict[str, Cursor] = field(default_factory=dict)


class Staging:
    def __init__(self, max_records: int) -> None:
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        self.max_records = max_records
        self._staged = Staged()

    def __len__(self) -> int:
        return len(self._staged.records)

    def add(self, body: bytes, *, workload: str = "", cursor: Cursor | None = None) -> bool:
        """Keep the record, or count it as dropped when the stage is full; either way the
        workload's cursor moves past it."""
        if workload and cursor is not None:
            self._staged.cursors[workload] = cursor
        if len(self._staged.records) >= self.max_records:
            self._staged.dropped += 1
            return False
        self._staged.records.append(body)
        self._staged.workloads.append(workload)
        return True

    def take(self) -> Staged:
        """What was staged since the last take."""
        staged, self._staged = self._staged, Staged()
        return staged

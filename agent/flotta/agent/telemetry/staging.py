"""A bounded in-memory stage in front of the buffer, so a stream of log lines becomes one
transaction per flush instead of one write per line."""

from __future__ import annotations


class Staging:
    def __init__(self, max_records: int) -> None:
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        self.max_records = max_records
        self._records: list[bytes] = []
        self._dropped = 0

    def __len__(self) -> int:
        return len(self._records)

    def add(self, body: bytes) -> bool:
        """Keep the record, or count it as dropped when the stage is full."""
        if len(self._records) >= self.max_records:
            self._dropped += 1
            return False
        self._records.append(body)
        return True

    def take(self) -> tuple[list[bytes], int]:
        """The staged records and the drops since the last take."""
        records, dropped = self._records, self._dropped
        self._records, self._dropped = [], 0
        return records, dropped

"""Errors raised when input breaks the contract.

ContractError                 anything that does not follow the contract
├── TopicError                a topic or subject that is not ours, or a bad identifier
└── PayloadError              a payload that cannot be accepted
    ├── PayloadTooLargeError       over the size limit of its kind (checked before parsing)
    └── SchemaVersionError    a schema version this side does not speak
"""

from __future__ import annotations


class ContractError(ValueError):
    """Input that does not follow the Flotta contract."""


class TopicError(ContractError):
    """A topic, subject or identifier outside the contract."""


class PayloadError(ContractError):
    """A payload that cannot be accepted: malformed, invalid, oversized or of another version."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind} payload: {reason}")
        self.kind = kind
        self.reason = reason


class PayloadTooLargeError(PayloadError):
    def __init__(self, kind: str, size: int, limit: int) -> None:
        super().__init__(kind, f"{size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class SchemaVersionError(PayloadError):
    def __init__(self, kind: str, found: object, supported: int) -> None:
        super().__init__(
            kind, f"schemaVersion {found!r} is not supported (this side speaks {supported})"
        )
        self.found = found
        self.supported = supported

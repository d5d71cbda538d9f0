"""The bounds every scalar of the contract keeps, without a validation library: the wire
structs (msgspec) and the CRD models (pydantic, :mod:`flotta.schemas.scalars`) both use them.

Whatever a device sends must survive every consumer downstream: JSON parsers that hold numbers
in doubles, Kubernetes (int64 fields), datetime arithmetic in UTC. So integers stay within
±(2^53 - 1), floats are finite, and times carry a zone and lie between 1970 and 9999 (read as
UTC, so no offset can push them out of Python's range).
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_SAFE_INTEGER = 2**53 - 1
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)
TIME_RANGE_ERROR = "time is outside the years 1970 to 9999"


def in_utc(value: datetime) -> datetime:
    """``value`` in UTC; ValueError when it has no zone or lies outside the range in UTC."""
    if value.utcoffset() is None:
        raise ValueError("time has no zone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(TIME_RANGE_ERROR) from None
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValueError(TIME_RANGE_ERROR)
    return utc

"""Bounded scalar types shared by the wire payloads and the resource fragments devices fill in.

Whatever a device sends must survive every consumer downstream: JSON parsers that hold numbers
in doubles, Kubernetes (int64 fields), datetime arithmetic in UTC. So integers stay within
±(2^53 - 1), floats are finite, and times carry a zone and lie between 1970 and 9999 (read as
UTC, so no offset can push them out of Python's range).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

MAX_SAFE_INTEGER = 2**53 - 1
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)

Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Integer = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _in_utc(value: datetime) -> datetime:
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is outside the years 1970 to 9999") from None
    if not EARLIEST_TIME <= in_utc < LATEST_TIME:
        raise ValueError("time is outside the years 1970 to 9999")
    return in_utc


Time = Annotated[AwareDatetime, AfterValidator(_in_utc)]

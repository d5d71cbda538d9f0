"""Bounded scalar types of the resource fragments devices fill in (pydantic, for the CRD
models); the bounds are :mod:`flotta.schemas.bounds`, which the wire structs keep too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flotta.schemas.bounds import MAX_SAFE_INTEGER

Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Integer = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

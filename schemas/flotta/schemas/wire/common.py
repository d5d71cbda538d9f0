"""What every payload has: the schema version, and a size limit per kind; the struct bases and
the bounded field types of the wire.

The payloads are msgspec structs, the one definition the agent, the bridge and the operator
share: msgspec costs a device about 1.5 MiB of memory where pydantic costs about 12 MiB, so
nothing under :mod:`flotta.schemas.wire` imports pydantic. A field's docstring (the string
after it) is its description in the published JSON Schemas (:mod:`flotta.schemas.json_schemas`
reads it from the source; Python discards it, so it costs a device nothing).

Structs are not checked when built, only when decoded: :func:`flotta.schemas.codec.encode`
checks a payload by decoding what it wrote, so nothing leaves a sender that a receiver refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

import msgspec

from flotta.schemas.bounds import MAX_SAFE_INTEGER, in_utc

SCHEMA_VERSION: Literal[1] = 1
KiB = 1024

ShortText = Annotated[str, msgspec.Meta(max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]
Pem = Annotated[str, msgspec.Meta(max_length=16 * KiB)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
Integer = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
# A zone is required; the years (1970 to 9999 in UTC) are checked by normalise_times.
Time = Annotated[datetime, msgspec.Meta(tz=True)]

SAFE_YEARS_FIRST = 1970
SAFE_YEARS_LAST = 9998  # a UTC time in the year 9998 is before 9999-01-01


class WireStruct(
    msgspec.Struct,
    rename="camel",
    forbid_unknown_fields=True,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
):
    """A message fragment: camelCase, unknown fields are an error within a version."""


class ApiStruct(msgspec.Struct, rename="camel", frozen=True, kw_only=True, omit_defaults=True):
    """A fragment shared with the Kubernetes resources: unknown fields are ignored (a newer API
    may add fields)."""


class Payload(WireStruct, frozen=True, kw_only=True, tag_field="schemaVersion", tag=SCHEMA_VERSION):
    """A versioned payload. ``KIND`` names it in errors; ``MAX_BYTES`` bounds its encoding.

    ``schemaVersion`` is the struct's tag: always written first, and required by
    :func:`flotta.schemas.codec.decode`."""

    KIND: ClassVar[str] = "payload"
    MAX_BYTES: ClassVar[int] = 64 * KiB


SCHEMA_VERSION_DESCRIPTION = "The contract version: the number 1, required in every payload."


def normalise_times(struct: msgspec.Struct, *names: str) -> None:
    """Hold the named time fields of ``struct`` to the contract's range and put them in UTC
    (called from ``__post_init__``; a ValueError there is a decoding error at the struct)."""
    for name in names:
        value = getattr(struct, name)
        if value is None:
            continue
        if value.tzinfo is UTC and SAFE_YEARS_FIRST <= value.year <= SAFE_YEARS_LAST:
            continue
        msgspec.structs.force_setattr(struct, name, in_utc(value))

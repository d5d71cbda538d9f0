"""Struct bases and field types of the device's side of the MQTT contract (msgspec).

The contract's reference models are pydantic (:mod:`flotta.schemas.wire`), shared by the operator
and the bridge. The agent mirrors the payloads it reads and writes with msgspec structs, which
cost a device about 1.5 MiB of memory where pydantic costs about 12 MiB;
``tests/schemas/test_device_contract.py`` holds every mirror to its reference model (wire names,
required fields, defaults, limits, and the same verdict on the same bytes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

import msgspec

KiB = 1024
SCHEMA_VERSION = 1

ShortText = Annotated[str, msgspec.Meta(max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]
Pem = Annotated[str, msgspec.Meta(max_length=16 * KiB)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
MAX_SAFE_INTEGER = 2**53 - 1
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
Integer = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
# A zone is required; the reference also bounds the year (1970-9999), which msgspec cannot say.
Time = Annotated[datetime, msgspec.Meta(tz=True)]


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
    """A fragment shared with the Kubernetes resources: unknown fields are ignored."""


class Payload(WireStruct, frozen=True, tag_field="schemaVersion", tag=SCHEMA_VERSION):
    """A versioned payload (``schemaVersion`` is always written). ``KIND`` names it in errors;
    ``MAX_BYTES`` bounds its encoding."""

    KIND: ClassVar[str] = "payload"
    MAX_BYTES: ClassVar[int] = 64 * KiB

"""What every payload has: the schema version, and a size limit per kind."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from flotta.schemas.base import WireModel

SCHEMA_VERSION: Literal[1] = 1
KiB = 1024

ShortText = Annotated[str, Field(max_length=256)]
Text = Annotated[str, Field(max_length=4096)]
Pem = Annotated[str, Field(max_length=16 * KiB)]


class Payload(WireModel):
    """A versioned payload. ``KIND`` names it in errors; ``MAX_BYTES`` bounds its encoding."""

    KIND: ClassVar[str] = "payload"
    MAX_BYTES: ClassVar[int] = 64 * KiB

    schema_version: Literal[1] = SCHEMA_VERSION
    """The contract version: the number 1, required in every payload."""

    @field_validator("schema_version", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        if isinstance(value, bool):  # JSON true equals 1 to Python's Literal check
            raise ValueError("a boolean is no schema version")
        return value

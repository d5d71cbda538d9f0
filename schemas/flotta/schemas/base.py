"""Model bases shared by the CRD and wire models: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A Kubernetes resource fragment: camelCase, unknown fields ignored (a newer API may add
    fields the operator does not know yet).

    A field's docstring is its description in the generated CRDs (``deploy/crds/``, what
    ``kubectl explain`` prints) and, for the types the payloads share, in the JSON Schemas."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=False,
        use_attribute_docstrings=True,
    )

    def to_api(self) -> dict[str, Any]:
        """The fragment as the Kubernetes API carries it: camelCase, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class WireModel(BaseModel):
    """A message payload: camelCase, strict (unknown fields are an error within a version).

    A field's docstring is its description in the published JSON Schemas (``schemas/json/``)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

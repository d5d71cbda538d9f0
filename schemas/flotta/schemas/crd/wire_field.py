"""A wire struct (msgspec) as a field of a CRD model (pydantic), so that a fragment a device
reports and a resource stores is defined once, in :mod:`flotta.schemas.wire`.

``Annotated[Hardware, WireField(keep_unknown_fields=True)]`` holds the struct itself: it
validates with msgspec (wire names; what the struct does not know is dropped), dumps the
API form (:func:`flotta.schemas.codec.content_document`: wire names, every field that is not
None) and describes itself in the generated CRDs with msgspec's schema and the struct's
docstrings. ``keep_unknown_fields`` lets the API server keep fields that no struct here
knows (``x-kubernetes-preserve-unknown-fields``), for example what a newer device reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from flotta.schemas.codec import content_document
from flotta.schemas.struct_schemas import described_components

_STRUCT_KEY = "flotta_wire_struct"


@dataclass(frozen=True)
class WireField:
    """``Annotated`` metadata that makes a msgspec struct type a pydantic field type."""

    keep_unknown_fields: bool = False

    def __get_pydantic_core_schema__(
        self, source: type[msgspec.Struct], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        struct = source

        def validate(value: Any) -> msgspec.Struct:
            if isinstance(value, struct):
                return value
            # A msgspec.ValidationError is a ValueError: pydantic reports it at the field.
            return msgspec.convert(value, struct)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(content_document),
            metadata={_STRUCT_KEY: struct},
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        struct: type[msgspec.Struct] = schema["metadata"][_STRUCT_KEY]
        return struct_schema(struct, keep_unknown_fields=self.keep_unknown_fields)


def struct_schema(struct: type[msgspec.Struct], *, keep_unknown_fields: bool) -> dict[str, Any]:
    """The JSON Schema of ``struct`` with every referenced struct written in place (a CRD
    schema has no references)."""
    structs, components = described_components([struct])
    for name, each in structs.items():
        _declared_enum_order(each, components[name])
    if keep_unknown_fields:
        for component in components.values():
            component["additionalProperties"] = True
    schema: dict[str, Any] = _in_place(components[struct.__name__], components)
    return schema


def _declared_enum_order(struct: type[msgspec.Struct], schema: dict[str, Any]) -> None:
    """List a Literal's values as the source declares them (msgspec sorts them): the order
    ``kubectl explain`` and the API server's errors print."""
    for field in msgspec.structs.fields(struct):
        values = _literal_values(field.type)
        if not values:
            continue
        prop = schema["properties"][field.encode_name]
        for node in (prop, *prop.get("anyOf", ())):
            if "enum" in node:
                node["enum"] = list(values)


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    """The values of a Literal type, also inside Annotated or an optional union."""
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)
    if origin is Annotated:
        return _literal_values(get_args(annotation)[0])
    if origin in (Union, UnionType):
        literals = [_literal_values(arg) for arg in get_args(annotation) if arg is not NoneType]
        return literals[0] if len(literals) == 1 else ()
    return ()


def _in_place(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_in_place(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _in_place(components[ref.rsplit("/", 1)[-1]], components)
        rest = {key: _in_place(value, components) for key, value in node.items() if key != "$ref"}
        return {**target, **rest}
    return {key: _in_place(value, components) for key, value in node.items()}

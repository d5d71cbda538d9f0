"""msgspec's JSON Schema of wire structs, with each struct's and each field's docstring as its
description: what the published payload schemas (:mod:`flotta.schemas.json_schemas`) and the
CRD fragments that hold a wire struct (:mod:`flotta.schemas.crd.wire_field`) both describe.

A field's docstring (the string after its annotation) is read from the source: Python
discards it, so it costs a device nothing.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from collections.abc import Iterable
from functools import cache
from typing import Any

import msgspec


@cache
def field_docstrings(struct: type[msgspec.Struct]) -> dict[str, str]:
    """Each field's docstring, by wire name, from the source of the struct and its bases."""
    by_attribute: dict[str, str] = {}
    for klass in reversed(struct.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, msgspec.Struct)):
            continue
        if klass is msgspec.Struct:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for statement, following in itertools.pairwise(body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                by_attribute[statement.target.id] = inspect.cleandoc(following.value.value)
    return {
        field.encode_name: by_attribute[field.name]
        for field in msgspec.structs.fields(struct)
        if field.name in by_attribute
    }


def described_components(
    models: Iterable[type[msgspec.Struct]],
) -> tuple[dict[str, type[msgspec.Struct]], dict[str, Any]]:
    """Every struct ``models`` use, by name, and its schema (references as
    ``#/$defs/{name}``) with the descriptions."""
    models = list(models)
    _, components = msgspec.json.schema_components(models, ref_template="#/$defs/{name}")
    structs: dict[str, type[msgspec.Struct]] = {}
    pending: list[type[msgspec.Struct]] = list(models)
    while pending:
        struct = pending.pop()
        if struct.__name__ in structs:
            continue
        structs[struct.__name__] = struct
        for field in msgspec.structs.fields(struct):
            pending += structs_in(field.type)
    for name, struct in structs.items():
        schema = components[name]
        if struct.__doc__:
            schema["description"] = inspect.cleandoc(struct.__doc__)
        for wire_name, text in field_docstrings(struct).items():
            schema["properties"][wire_name]["description"] = text
    return structs, components


def structs_in(annotation: Any) -> list[type[msgspec.Struct]]:
    """The structs a field's type names, however nested (optional, list, dict)."""
    info = msgspec.inspect.type_info(annotation)
    found: list[type[msgspec.Struct]] = []
    pending: list[Any] = [info]
    while pending:
        node = pending.pop()
        if isinstance(node, msgspec.inspect.StructType):
            found.append(node.cls)
        elif isinstance(node, msgspec.inspect.UnionType):
            pending += node.types
        elif isinstance(node, msgspec.inspect.CollectionType):
            pending.append(node.item_type)
        elif isinstance(node, msgspec.inspect.DictType):
            pending += [node.key_type, node.value_type]
        elif isinstance(node, msgspec.inspect.Metadata):
            pending.append(node.type)
    return found

"""A small subset of CEL for ``x-kubernetes-validations`` rules.

Supported: literals, ``self`` and field selection, indexing, ``!``, ``&&``, ``||``,
comparisons, ``in``, ``+``/``-``, ``has()``, ``size()``, string ``startsWith``/``endsWith``/
``contains``/``matches`` and the ``all``/``exists``/``exists_one``/``filter``/``map``
macros. Rules outside the subset (or with ``oldSelf``) raise ``CelUnsupportedError``; the caller
skips them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+!<>().,\[\]?:])|(?P<id>[A-Za-z_][A-Za-z0-9_]*))"
)
_MACROS = ("all", "exists", "exists_one", "filter", "map")

Node = tuple[Any, ...]


class CelUnsupportedError(ValueError):
    """A rule outside the supported subset."""


class CelEvalError(ValueError):
    """A rule that failed to evaluate (missing field, wrong type)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise CelUnsupportedError(f"cannot tokenize {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> str:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise CelUnsupportedError("unexpected end of rule")
        token = self.tokens[self.index]
        if expected is not None and token[1] != expected:
            raise CelUnsupportedError(f"expected {expected!r}, found {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.ternary()
        if self.index != len(self.tokens):
            raise CelUnsupportedError(f"unexpected {self.peek()!r}")
        return node

    def ternary(self) -> Node:
        condition = self.binary(0)
        if self.peek() == "?":
            self.take("?")
            yes = self.ternary()
            self.take(":")
            return ("if", condition, yes, self.ternary())
        return condition

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            operator = self.take()[1]
            node = ("op", operator, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek() in ("!", "-"):
            operator = self.take()[1]
            return ("unary", operator, self.unary())
        return self.postfix(self.primary())

    def arguments(self) -> list[Node]:
        self.take("(")
        arguments: list[Node] = []
        while self.peek() != ")":
            arguments.append(self.ternary())
            if self.peek() == ",":
                self.take(",")
        self.take(")")
        return arguments

    def postfix(self, node: Node) -> Node:
        while self.peek() in (".", "["):
            if self.take()[1] == "[":
                node = ("index", node, self.ternary())
                self.take("]")
                continue
            kind, name = self.take()
            if kind != "id":
                raise CelUnsupportedError(f"expected a field name, found {name!r}")
            if self.peek() != "(":
                node = ("select", node, name)
            elif name in _MACROS:
                self.take("(")
                variable = self.take()[1]
                self.take(",")
                body = self.ternary()
                self.take(")")
                node = ("macro", name, node, variable, body)
            else:
                node = ("call", name, node, self.arguments())
        return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            return ("lit", float(text) if "." in text else int(text))
        if kind == "str":
            return ("lit", bytes(text[1:-1], "utf-8").decode("unicode_escape"))
        if text == "(":
            node = self.ternary()
            self.take(")")
            return node
        if text == "[":
            items: list[Node] = []
            while self.peek() != "]":
                items.append(self.ternary())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return ("list", items)
        if kind != "id":
            raise CelUnsupportedError(f"unexpected {text!r}")
        if text in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[text])
        if text == "oldSelf":
            raise CelUnsupportedError("transition rules (oldSelf) are not evaluated")
        if self.peek() == "(":
            return ("call", text, None, self.arguments())
        return ("var", text)


def compile_rule(rule: str) -> Node:
    return _Parser(rule).parse()


def _select(value: Any, name: str) -> Any:
    if not isinstance(value, dict) or name not in value:
        raise CelEvalError(f"no such key: {name}")
    return value[name]


def _has(node: Node, env: dict[str, Any]) -> bool:
    if node[0] != "select":
        raise CelUnsupportedError("has() needs a field selection")
    target = evaluate(node[1], env)
    return isinstance(target, dict) and node[2] in target


_STRING_METHODS: dict[str, Callable[[str, Any], Any]] = {
    "startsWith": lambda s, a: s.startswith(a),
    "endsWith": lambda s, a: s.endswith(a),
    "contains": lambda s, a: a in s,
    "matches": lambda s, a: re.search(a, s) is not None,
}


def _call(node: Node, env: dict[str, Any]) -> Any:
    _, name, target, arguments = node
    if target is None and name == "has" and len(arguments) == 1:
        return _has(arguments[0], env)
    values = [evaluate(argument, env) for argument in arguments]
    receiver = evaluate(target, env) if target is not None else None
    if name == "size":
        subject = receiver if target is not None else values[0]
        if not isinstance(subject, (str, list, dict)):
            raise CelEvalError("size() of a value without a size")
        return len(subject)
    if name in _STRING_METHODS and isinstance(receiver, str) and len(values) == 1:
        return _STRING_METHODS[name](receiver, values[0])
    raise CelUnsupportedError(f"function {name}() is not supported")


def _macro(node: Node, env: dict[str, Any]) -> Any:
    _, name, target, variable, body = node
    collection = evaluate(target, env)
    if isinstance(collection, dict):
        collection = list(collection)
    if not isinstance(collection, list):
        raise CelEvalError(f"{name}() over a value that is not a list or map")

    def run(item: Any) -> Any:
        return evaluate(body, {**env, variable: item})

    if name == "all":
        return all(run(item) is True for item in collection)
    if name == "exists":
        return any(run(item) is True for item in collection)
    if name == "exists_one":
        return sum(1 for item in collection if run(item) is True) == 1
    if name == "filter":
        return [item for item in collection if run(item) is True]
    return [run(item) for item in collection]


def _operator(operator: str, left: Any, right: Any) -> Any:
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if operator == "in":
        return left in right
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    try:
        return comparisons[operator](left, right)
    except TypeError as exc:
        raise CelEvalError(str(exc)) from exc


def evaluate(node: Node, env: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        if node[1] not in env:
            raise CelUnsupportedError(f"unknown name {node[1]!r}")
        return env[node[1]]
    if kind == "list":
        return [evaluate(item, env) for item in node[1]]
    if kind == "select":
        return _select(evaluate(node[1], env), node[2])
    if kind == "index":
        target, key = evaluate(node[1], env), evaluate(node[2], env)
        try:
            return target[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise CelEvalError(f"no such index {key!r}") from exc
    if kind == "unary":
        value = evaluate(node[2], env)
        return (not value) if node[1] == "!" else -value
    if kind == "if":
        return evaluate(node[2] if evaluate(node[1], env) is True else node[3], env)
    if kind == "op":
        operator = node[1]
        if operator in ("&&", "||"):
            left = evaluate(node[2], env)
            if operator == "&&" and left is False:
                return False
            if operator == "||" and left is True:
                return True
            return evaluate(node[3], env)
        return _operator(operator, evaluate(node[2], env), evaluate(node[3], env))
    if kind == "call":
        return _call(node, env)
    if kind == "macro":
        return _macro(node, env)
    raise CelUnsupportedError(f"unknown node {kind}")


def check(rule: str, value: Any) -> bool | None:
    """True/False for a rule over ``self``; None when the rule cannot be evaluated here."""
    try:
        result = evaluate(compile_rule(rule), {"self": value})
    except (CelUnsupportedError, CelEvalError, RecursionError):
        return None
    return result if isinstance(result, bool) else None

"""A strict parser for the Prometheus text exposition format (version 0.0.4): pure, no I/O.

Every line is a comment (``# HELP``, ``# TYPE`` or free text), blank, or one sample
``name{label="value",...} value [timestamp_ms]``. Anything else is an
:class:`~flotta.agent.telemetry.errors.ExpositionError` naming the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from flotta.agent.telemetry.errors import ExpositionError

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_SPECIAL_VALUES = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf}
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT = re.compile(r"-?\d+")


@dataclass(frozen=True, slots=True)
class ParsedSample:
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int | None = None


@dataclass(slots=True)
class Exposition:
    samples: list[ParsedSample] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)


def parse_exposition(text: str) -> Exposition:
    result = Exposition()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            _parse_comment(line, number, result)
        else:
            result.samples.append(parse_sample_line(line, number))
    return result


def _parse_comment(line: str, number: int, result: Exposition) -> None:
    parts = line[1:].lstrip(" \t").split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HELP", "TYPE"):
        return  # a free comment
    keyword, name = parts[0], parts[1]
    if not METRIC_NAME.fullmatch(name):
        raise ExpositionError(number, f"invalid metric name {name!r} in # {keyword}")
    rest = parts[2] if len(parts) == 3 else ""
    if keyword == "TYPE":
        kind = rest.strip()
        if kind not in METRIC_TYPES:
            raise ExpositionError(number, f"unknown metric type {kind!r} for {name}")
        if name in result.types:
            raise ExpositionError(number, f"second # TYPE line for {name}")
        result.types[name] = kind
    else:
        result.help[name] = _unescape(rest, number)


def parse_sample_line(line: str, number: int = 1) -> ParsedSample:
    match = METRIC_NAME.match(line)
    if match is None:
        raise ExpositionError(number, f"a sample must start with a metric name: {line[:80]!r}")
    name = match.group()
    position = match.end()
    labels: dict[str, str] = {}
    if position < len(line) and line[position] == "{":
        labels, position = _parse_labels(line, position + 1, number)
    rest = line[position:]
    if rest and rest[0] not in " \t":
        raise ExpositionError(number, f"unexpected {rest[0]!r} after {name}")
    fields = rest.split()
    if not 1 <= len(fields) <= 2:
        raise ExpositionError(number, f"expected a value and an optional timestamp for {name}")
    value = _parse_value(fields[0], number)
    timestamp_ms = None
    if len(fields) == 2:
        if not _INT.fullmatch(fields[1]):
            raise ExpositionError(number, f"timestamp {fields[1]!r} is not an integer")
        timestamp_ms = int(fields[1])
    return ParsedSample(name, value, labels, timestamp_ms)


def _parse_labels(line: str, position: int, number: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        position = _skip_blanks(line, position)
        if position < len(line) and line[position] == "}":
            return labels, position + 1
        match = LABEL_NAME.match(line, position)
        if match is None:
            raise ExpositionError(number, f"expected a label name at column {position + 1}")
        label = match.group()
        if label in labels:
            raise ExpositionError(number, f"label {label!r} appears twice")
        position = _skip_blanks(line, match.end())
        if line[position : position + 1] != "=":
            raise ExpositionError(number, f'expected ="value" after label {label!r}')
        position = _skip_blanks(line, position + 1)
        if line[position : position + 1] != '"':
            raise ExpositionError(number, f'expected ="value" after label {label!r}')
        value, position = _parse_label_value(line, position + 1, number)
        labels[label] = value
        position = _skip_blanks(line, position)
        if position < len(line) and line[position] == ",":
            position += 1
        elif position >= len(line) or line[position] != "}":
            raise ExpositionError(number, f"expected , or }} after label {label!r}")


def _parse_label_value(line: str, position: int, number: int) -> tuple[str, int]:
    chars: list[str] = []
    while position < len(line):
        char = line[position]
        if char == '"':
            return "".join(chars), position + 1
        if char == "\\":
            escaped = line[position + 1 : position + 2]
            if escaped not in _ESCAPES:
                raise ExpositionError(number, f"invalid escape \\{escaped} in a label value")
            chars.append(_ESCAPES[escaped])
            position += 2
        else:
            chars.append(char)
            position += 1
    raise ExpositionError(number, "unterminated label value")


def _unescape(text: str, number: int) -> str:
    if "\\" not in text:
        return text
    chars: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped not in ("\\", "n"):
                raise ExpositionError(number, f"invalid escape \\{escaped} in # HELP")
            chars.append(_ESCAPES[escaped])
            position += 2
        else:
            chars.append(char)
            position += 1
    return "".join(chars)


def _parse_value(text: str, number: int) -> float:
    if text in _SPECIAL_VALUES:
        return _SPECIAL_VALUES[text]
    if not _FLOAT.fullmatch(text):
        raise ExpositionError(number, f"value {text!r} is not a number")
    return float(text)


def _skip_blanks(line: str, position: int) -> int:
    while position < len(line) and line[position] in " \t":
        position += 1
    return position

"""Syslog messages as RFC 5424 spells them, and their framing on a stream (RFC 6587): pure
functions over text and bytes, no I/O.

A message is ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG``:

* header fields are printable US-ASCII with a length limit each (HOSTNAME 255, APP-NAME 48,
  PROCID 128, MSGID 32); a value that does not fit is cut, a character outside the range
  becomes ``_``, and an empty one is the NILVALUE ``-``;
* the timestamp is RFC 3339 in UTC with microseconds (``TIME-SECFRAC`` allows six digits);
* structured data is ``[SD-ID PARAM="value" ...]``, where a value is UTF-8 with ``"``, ``\\``
  and ``]`` escaped by a backslash;
* the text is UTF-8 after a byte-order mark (RFC 5424 6.4: ``MSG-UTF8``), so a receiver
  knows its encoding; line breaks and other characters are kept as they are.

On TCP each message goes with octet counting (RFC 6587 3.4.1): its length in bytes, a
space, the message. Nothing inside a message is escaped or cut for the framing, so a line
with line breaks arrives whole.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

BOM = b"\xef\xbb\xbf"
NILVALUE = "-"
VERSION = 1

HOSTNAME_MAX = 255
APP_NAME_MAX = 48
PROCID_MAX = 128
MSGID_MAX = 32
SD_NAME_MAX = 32


class Facility(enum.IntEnum):
    KERN = 0
    USER = 1
    DAEMON = 3
    LOCAL0 = 16
    LOCAL1 = 17
    LOCAL2 = 18
    LOCAL3 = 19
    LOCAL4 = 20
    LOCAL5 = 21
    LOCAL6 = 22
    LOCAL7 = 23


class Severity(enum.IntEnum):
    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7


def priority(facility: Facility, severity: Severity) -> int:
    return int(facility) * 8 + int(severity)


def header_field(value: str, max_length: int) -> str:
    """``value`` as a header field: printable US-ASCII (33..126, others become ``_``), at most
    ``max_length`` characters, ``-`` when empty."""
    if not value:
        return NILVALUE
    cut = value[:max_length]
    if cut.isascii() and cut.isprintable() and " " not in cut:
        return cut
    return "".join(c if "!" <= c <= "~" else "_" for c in cut)


def sd_name(value: str) -> str:
    """``value`` if it is an SD-ID or PARAM-NAME: printable US-ASCII except ``=``, space,
    ``]`` and ``"``, at most 32 characters; raises ValueError otherwise. Names are the
    sender's constants: check them once, not per message."""
    if not 1 <= len(value) <= SD_NAME_MAX or any(not "!" <= c <= "~" or c in '= ]"' for c in value):
        raise ValueError(f"{value!r} is not an RFC 5424 SD-NAME")
    return value


def escape_param_value(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` get a backslash before them."""
    if '"' not in value and "\\" not in value and "]" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(elements: Sequence[tuple[str, Iterable[tuple[str, str]]]]) -> str:
    """``[id name="value" ...]...`` for the elements (each an SD-ID and its parameters, whose
    names :func:`sd_name` accepts; values are escaped); ``-`` when there are none."""
    if not elements:
        return NILVALUE
    parts: list[str] = []
    for sd_id, params in elements:
        parts.append("[" + sd_id)
        for name, value in params:
            parts.append(f' {name}="{escape_param_value(value)}"')
        parts.append("]")
    return "".join(parts)


def timestamp(time: datetime) -> str:
    """RFC 3339 in UTC with microseconds: ``2024-01-02T03:04:05.000006Z``."""
    utc = time.astimezone(UTC) if time.tzinfo is not UTC else time
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def message(
    *,
    facility: Facility,
    severity: Severity,
    time: datetime,
    hostname: str,
    app_name: str,
    procid: str,
    msgid: str,
    sd: str,
    text: str,
) -> bytes:
    """One RFC 5424 message; ``sd`` is the output of :func:`structured_data`. The text is
    encoded as UTF-8 after a byte-order mark (a character UTF-8 cannot carry, a lone
    surrogate, becomes ``?``)."""
    head = (
        f"<{priority(facility, severity)}>{VERSION} {timestamp(time)} "
        f"{header_field(hostname, HOSTNAME_MAX)} {header_field(app_name, APP_NAME_MAX)} "
        f"{header_field(procid, PROCID_MAX)} {header_field(msgid, MSGID_MAX)} {sd}"
    )
    return head.encode("utf-8", "replace") + b" " + BOM + text.encode("utf-8", "replace")


def octet_counted(message: bytes) -> bytes:
    """The message framed for a stream transport (RFC 6587 3.4.1: ``MSG-LEN SP SYSLOG-MSG``)."""
    return b"%d %b" % (len(message), message)


def truncate(message: bytes, max_bytes: int) -> bytes:
    """At most ``max_bytes`` bytes of the message, cut at a UTF-8 character boundary (a
    datagram transport cannot split a message, RFC 5426 3.2)."""
    if len(message) <= max_bytes:
        return message
    end = max_bytes
    while end > 0 and (message[end] & 0xC0) == 0x80:  # a continuation byte: back up
        end -= 1
    return message[:end]

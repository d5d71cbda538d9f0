"""The MQTT clients' warnings of a simulator process, counted by kind instead of printed.

Thousands of devices reconnecting after a broker restart log as many lines; what a benchmark
needs is how many attempts failed, and why. Each warning of ``flotta.mqtt`` is reduced to its
kind (the device id and the numbers taken out) and counted; the counts go into the process's
report (``report.py``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

MAX_KINDS = 20  # distinct kinds kept; the rest are counted as "other"
_CLIENT = re.compile(r"^MQTT [^:]+: ")
_NUMBER = re.compile(r"\d+")


def kind_of(message: str) -> str:
    """``MQTT sim-00001: cannot connect to ... 127.0.0.1:4242: connection refused`` ->
    ``cannot connect to ... N.N.N.N:N: connection refused``."""
    return _NUMBER.sub("N", _CLIENT.sub("", message, count=1))[:200]


class WarningCounter(logging.Filter):
    """A logger filter: counts the warnings and errors it sees, lets only errors through."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        kind = kind_of(record.getMessage())
        if kind not in self.counts and len(self.counts) >= MAX_KINDS:
            kind = "other"
        self.counts[kind] += 1
        return record.levelno >= logging.ERROR


def count_mqtt_warnings() -> WarningCounter:
    """Count ``flotta.mqtt`` warnings and errors from now on; print only the errors."""
    counter = WarningCounter()
    logger = logging.getLogger("flotta.mqtt")
    logger.setLevel(logging.WARNING)
    logger.addFilter(counter)
    return counter

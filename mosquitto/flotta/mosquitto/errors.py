"""Errors of the broker configuration and runner."""

from __future__ import annotations


class BrokerError(Exception):
    """The broker could not be configured, started, reloaded or stopped."""


class BrokerStartError(BrokerError):
    """Mosquitto exited or never became ready; the message carries the end of its log."""

    def __init__(self, reason: str, log_tail: str) -> None:
        super().__init__(f"mosquitto did not start: {reason}\n--- mosquitto log ---\n{log_tail}")
        self.reason = reason
        self.log_tail = log_tail

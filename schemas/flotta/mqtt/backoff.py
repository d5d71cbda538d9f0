"""The MQTT client's reconnect backoff is the shared one, :mod:`flotta.backoff` (full jitter,
reset after a stable connection); kept so that ``flotta.mqtt.backoff`` imports still work."""

from flotta.backoff import Backoff, BackoffPolicy

__all__ = ["Backoff", "BackoffPolicy"]

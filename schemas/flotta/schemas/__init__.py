"""The shared contract of Flotta: CRD models, wire payloads, MQTT topics and NATS subjects.

Everything here is pure (no I/O) and imported by the operator, the bridge and the agent.
"""

from flotta.schemas.errors import ContractError, PayloadError, PayloadTooLargeError, TopicError

__all__ = ["ContractError", "PayloadError", "PayloadTooLargeError", "TopicError"]

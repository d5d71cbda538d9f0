"""The device's side of the MQTT contract: the payloads the agent reads and writes, as msgspec
structs mirroring :mod:`flotta.schemas.wire` (see :mod:`flotta.agent.contract.base` for why)."""

from flotta.agent.contract.base import SCHEMA_VERSION, Payload
from flotta.agent.contract.codec import (
    checked,
    decode,
    decode_fragment,
    encode,
    encode_fragment,
    to_builtins,
)
from flotta.agent.contract.desired import (
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HeartbeatConfiguration,
    OsInformation,
    SealedData,
    SealedSecret,
)
from flotta.agent.contract.hardware import Hardware
from flotta.agent.contract.messages import (
    CertificateAnswer,
    ConnectionState,
    DeviceEvent,
    EnrolmentAnswer,
    EnrolmentRequest,
    RenewalRequest,
)
from flotta.agent.contract.status import (
    HardwareReport,
    StatusReport,
    TelemetryBuffer,
    UpgradeReport,
    WorkloadReport,
)
from flotta.agent.contract.telemetry import (
    LogLine,
    LogsBatch,
    MetricSample,
    MetricsBatch,
    TelemetryReceipt,
)

__all__ = [
    "SCHEMA_VERSION",
    "CertificateAnswer",
    "ConnectionState",
    "DesiredConfiguration",
    "DesiredState",
    "DesiredWorkload",
    "DeviceEvent",
    "EnrolmentAnswer",
    "EnrolmentRequest",
    "Hardware",
    "HardwareReport",
    "HeartbeatConfiguration",
    "LogLine",
    "LogsBatch",
    "MetricSample",
    "MetricsBatch",
    "OsInformation",
    "Payload",
    "RenewalRequest",
    "SealedData",
    "SealedSecret",
    "StatusReport",
    "TelemetryBuffer",
    "TelemetryReceipt",
    "UpgradeReport",
    "WorkloadReport",
    "checked",
    "decode",
    "decode_fragment",
    "encode",
    "encode_fragment",
    "to_builtins",
]

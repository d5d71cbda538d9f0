"""Wire payloads of the MQTT contract (v1): one msgspec struct per topic, each with a schema
version and a size limit, shared by the agent, the bridge and the operator (see
:mod:`flotta.schemas.wire.common`). Encode and decode with :mod:`flotta.schemas.codec`."""

from flotta.schemas.wire.common import SCHEMA_VERSION, Payload
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.desired import (
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HealthGate,
    HeartbeatConfiguration,
    Mount,
    OsInformation,
    SealedData,
    SealedSecret,
    UpdateSchedule,
)
from flotta.schemas.wire.enrolment import (
    CertificateAnswer,
    EnrolmentAnswer,
    EnrolmentRequest,
    RenewalRequest,
)
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.hardware import Hardware
from flotta.schemas.wire.status import (
    HardwareReport,
    StatusReport,
    TelemetryBuffer,
    UpgradeReport,
    VersionFailure,
    WorkloadReport,
)
from flotta.schemas.wire.telemetry import (
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
    "HealthGate",
    "HeartbeatConfiguration",
    "LogLine",
    "LogsBatch",
    "MetricSample",
    "MetricsBatch",
    "Mount",
    "OsInformation",
    "Payload",
    "RenewalRequest",
    "SealedData",
    "SealedSecret",
    "StatusReport",
    "TelemetryBuffer",
    "TelemetryReceipt",
    "UpdateSchedule",
    "UpgradeReport",
    "VersionFailure",
    "WorkloadReport",
]
